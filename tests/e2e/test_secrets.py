"""Secrets, from each place they can come from, on each command: a real MLflow server, real CLI
processes, and every byte they print or leave behind (the store, the experiment folder, Ray's
own session folder) searched for them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO, SWEEP, free_port, write_sweep

pytestmark = pytest.mark.slow
PASSWORD = "pw-7f2c9a-never-shown"
TOKEN = "tok-51c2e8-never-shown"
SMALL = {
    "name": "secrets",
    "model": {"arch": "mlp", "hidden": [16]},
    "params": {"lr": {"log_uniform": [1.0e-2, 1.0e-1]}},
    "train": {"epochs": 2},
    "search": {"num_samples": 2},
}


def sweep_cli(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MLFLOW_TRACKING", "RAY_ADDRESS"))
    } | env
    return subprocess.run(
        [*SWEEP, *args],
        cwd=cwd,
        env=env | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def leaks_in(*folders: Path, secrets: tuple[str, ...] = (PASSWORD, TOKEN)) -> list[str]:
    return [
        str(path)
        for folder in folders
        for path in folder.rglob("*")
        if path.is_file()
        and not path.is_symlink()
        and any(secret.encode() in path.read_bytes() for secret in secrets)
    ]


def test_credentials_from_the_environment_are_used_and_never_shown_or_stored(
    tmp_path, mlflow_server
):
    host = mlflow_server.url.removeprefix("http://")
    env = {
        "MLFLOW_TRACKING_URI": f"http://alice:{PASSWORD}@{host}",
        "MLFLOW_TRACKING_TOKEN": TOKEN,
        "MLFLOW_TRACKING_PASSWORD": PASSWORD,
        "MLFLOW_TRACKING_USERNAME": "alice",
        # Ray started by the sweep itself, its session logs in a folder this test searches (short:
        # socket paths).
        "RAY_TMPDIR": (ray_folder := tempfile.mkdtemp(prefix="ray-")),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    try:
        path = write_sweep(tmp_path, SMALL | {"storage": {"path": str(tmp_path / "results")}})
        ran = sweep_cli("run", str(path), "-v", cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        # the next commands need no --tracking-uri: the environment has it
        assert "--tracking-uri http" not in ran.stdout
        assert "sweep report" in ran.stdout
        experiment = next((tmp_path / "results").iterdir())
        outputs = [ran]
        outputs.append(
            sweep_cli("report", "secrets", "-o", str(tmp_path / "report"), cwd=tmp_path, env=env)
        )
        outputs.append(
            sweep_cli(
                "refine", "secrets", "-o", str(tmp_path / "refined.yaml"), cwd=tmp_path, env=env
            )
        )
        outputs.append(sweep_cli("sync", str(experiment), cwd=tmp_path, env=env))
        assert [result.returncode for result in outputs] == [0, 0, 0, 0], [
            result.stderr for result in outputs
        ]
        refused = [
            # finished: refused, naming the store shown as ***
            sweep_cli("resume", str(experiment), cwd=tmp_path, env=env),
            # a tracking server is no backend store for `sweep ui`
            sweep_cli("ui", cwd=tmp_path, env=env),
        ]
        assert [result.returncode for result in refused] == [2, 2]
        assert "http://***@" in refused[1].stderr
        unreachable = sweep_cli(
            "run",
            str(path),
            cwd=tmp_path,
            env=env | {"MLFLOW_TRACKING_URI": f"http://alice:{PASSWORD}@127.0.0.1:{free_port()}"},
        )
        assert (
            unreachable.returncode == 2
            and "cannot reach the MLflow tracking store at http://***@127.0.0.1"
            in unreachable.stderr
        )
        for result in [*outputs, *refused, unreachable]:
            assert (
                PASSWORD not in result.stdout + result.stderr
                and TOKEN not in result.stdout + result.stderr
            )
        assert (
            json.loads((experiment / "sweep.json").read_text())["tracking_uri"] == f"http://{host}"
        )
        mlflow_server.stop()  # its store, flushed to disk, is under tmp_path
        assert leaks_in(tmp_path, Path(ray_folder)) == []
        # Ray's session logs were among what was searched
        assert any(Path(ray_folder).rglob("*.log"))
    finally:
        shutil.rmtree(ray_folder, ignore_errors=True)


@pytest.mark.parametrize(
    "command",
    [
        ["run", "{sweep}"],
        ["report", "secrets"],
        ["refine", "secrets", "-o", "refined.yaml"],
        ["ui"],
        ["resume", "{experiment}"],
    ],
    ids=["run", "report", "refine", "ui", "resume"],
)
def test_credentials_in_the_tracking_uri_flag_are_refused_without_being_repeated(command, tmp_path):
    path = write_sweep(tmp_path, SMALL)
    args = [part.format(sweep=path, experiment=tmp_path / "experiment") for part in command]
    result = sweep_cli(
        *args,
        "--tracking-uri",
        f"https://bob:{PASSWORD}@mlflow.example.com",
        cwd=tmp_path,
        env={},
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--tracking-uri: credentials do not belong in the URI" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert sorted(item.name for item in tmp_path.iterdir()) == ["search.yaml"]


@pytest.mark.parametrize("command", ["run", "validate", "check"])
def test_credentials_in_the_sweep_file_are_refused_without_being_repeated(command, tmp_path):
    path = write_sweep(
        tmp_path,
        SMALL
        | {"mlflow": {"tracking_uri": f"https://bob:{PASSWORD}@mlflow.example.com/?token={TOKEN}"}},
    )
    result = sweep_cli(command, str(path), cwd=tmp_path, env={}, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}: mlflow.tracking_uri: credentials do not belong in the URI" in result.stderr
    assert (
        PASSWORD not in result.stdout + result.stderr and TOKEN not in result.stdout + result.stderr
    )


@pytest.mark.parametrize("command", ["resume", "sync"])
def test_credentials_in_a_sweeps_journal_are_refused_without_being_repeated(command, tmp_path):
    experiment = tmp_path / "experiment"
    experiment.mkdir()
    (experiment / "sweep.json").write_text(
        json.dumps(
            {
                "sweep_name": "secrets",
                "tracking_uri": f"http://bob:{PASSWORD}@127.0.0.1:5000",
                "experiment_id": "1",
                "parent_run_id": "abc",
                "sweep_yaml": "name: secrets\nparams: {lr: 0.1}\n",
            }
        )
    )
    result = sweep_cli(command, str(experiment), cwd=tmp_path, env={}, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "sweep.json: tracking_uri: credentials do not belong in the URI" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
