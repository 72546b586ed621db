"""MLflow outages and secrets: a tracking server stopped and started under a real sweep,
and a token in the environment stored nowhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import free_port, invoke, run_sweep_cli
from tests.e2e.conftest import (
    assert_one_complete_sweep,
    experiment_of,
    start_sweep_cli,
    trial_results,
    wait_until,
    write_sweep,
)

# MLflow outages ----------------------------------------------------------------------


@pytest.mark.slow
def test_an_unreachable_tracking_server_fails_before_any_trial(tmp_path, ray_address):
    url = f"http://127.0.0.1:{free_port()}"
    path = write_sweep(tmp_path)
    result = run_sweep_cli(
        "run",
        str(path),
        "--address",
        ray_address,
        "--tracking-uri",
        url,
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert url in result.stderr and "Traceback" not in result.stderr
    assert not any((tmp_path / "results").glob("*"))  # no experiment was started


def test_an_unreachable_ray_address_fails_at_once_and_writes_nothing(tmp_path):
    # Ray itself would retry this address for minutes, warning every few seconds.
    address = f"127.0.0.1:{free_port()}"
    path = write_sweep(tmp_path)
    result = invoke(
        "run",
        str(path),
        "--address",
        address,
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--set",
        f"storage.path={tmp_path / 'results'}",
    )
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot connect to the Ray cluster at {address}" in result.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "results").exists()


def test_an_unwritable_storage_path_fails_before_anything_is_written(tmp_path, tracking_uri):
    path = write_sweep(tmp_path)
    result = invoke(
        "run",
        str(path),
        "--tracking-uri",
        tracking_uri,
        "--set",
        "storage.path=/proc/sweep-results",
    )
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "storage.path" in result.stderr and "/proc/sweep-results" in result.stderr
    assert MlflowClient(tracking_uri).get_experiment_by_name("resilient") is None


def start_sweep_until_epochs(
    tmp_path: Path, path: Path, tracking_uri: str, ray_address: str, *, epochs: int
):
    """`sweep run` in the background, once its first trial has reported `epochs` epochs."""
    storage = tmp_path / "results"
    sweep = start_sweep_cli(
        "run",
        str(path),
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={storage}",
        cwd=tmp_path,
    )
    try:
        experiment = wait_until(
            lambda: experiment_of(storage), timeout=120, what="the experiment folder", process=sweep
        )
        wait_until(
            lambda: any(len(lines) >= epochs for lines in trial_results(experiment).values()),
            timeout=120,
            what=f"{epochs} epochs",
            process=sweep,
        )
    except BaseException:
        sweep.kill()
        raise
    return sweep, experiment


@pytest.mark.slow
def test_a_tracking_server_restart_mid_sweep_loses_nothing(tmp_path, mlflow_server, ray_address):
    # Long enough (about 20 s) to still be training when the restarted server answers (about
    # 10 s in): unfused, since fused the 16 trials would train as one group in a few seconds.
    path = write_sweep(
        tmp_path,
        train={"epochs": 7, "fuse": "off"},
        search={"num_samples": 16, "max_concurrent": 1},
    )
    sweep, experiment = start_sweep_until_epochs(
        tmp_path, path, mlflow_server.url, ray_address, epochs=2
    )
    try:
        mlflow_server.stop()
        spool = experiment / "mlflow-spool.jsonl"
        wait_until(
            lambda: spool.exists() and spool.read_text().strip(),
            timeout=120,
            what="writes kept in the spool",
            process=sweep,
        )
        epochs_before_restart = sum(len(lines) for lines in trial_results(experiment).values())
        mlflow_server.start()
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    assert sweep.returncode == 0, output
    assert "does not answer" in output
    # Sent while the sweep was still training, without `sweep sync`.
    assert "answers again" in output.split("finished:")[0], output
    assert epochs_before_restart < 16 * 7
    assert_one_complete_sweep(mlflow_server.url, trials=16, epochs=7)
    assert not spool.read_text().strip()


@pytest.mark.slow
def test_logs_kept_through_an_outage_are_sent_by_sweep_sync(tmp_path, mlflow_server, ray_address):
    # Two seconds of patience with the stopped server at the end, not the default 30.
    path = write_sweep(
        tmp_path, search={"num_samples": 2, "max_concurrent": 1}, mlflow={"patience_s": 2}
    )
    sweep, experiment = start_sweep_until_epochs(
        tmp_path, path, mlflow_server.url, ray_address, epochs=1
    )
    try:
        mlflow_server.stop()
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    # Every trial trained; what MLflow missed waits with the experiment, and the user is told how to
    # send it.
    assert sweep.returncode == 0, output
    assert "2 completed" in output and f"sweep sync {experiment}" in output

    unreachable = run_sweep_cli("sync", str(experiment), cwd=tmp_path, timeout=120)
    assert unreachable.returncode == 2 and mlflow_server.url in unreachable.stderr

    mlflow_server.start()
    synced = run_sweep_cli("sync", str(experiment), cwd=tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    children = assert_one_complete_sweep(mlflow_server.url, trials=2, epochs=6)
    client = MlflowClient(mlflow_server.url)
    # histograms made it too
    assert all(client.list_artifacts(child.info.run_id) for child in children)
