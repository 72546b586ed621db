"""CLI start-up and exit: the commands that only read a sweep file answer without torch, Ray
or MLflow, `sweep run`'s driver never loads torch, and the CLI exits without Python's teardown
yet with its exit handlers, output and exit status intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from cli import exit_without_teardown
from sweeps.driver.sweep_file.distributions import build_search_space, preview_trial_configs
from tests.conftest import REPO, SWEEP

HEAVY = {"torch", "ray", "mlflow"}


def imported_packages(*args: str, cwd=REPO) -> set[str]:
    """Top-level packages `sweep ARGS` imports, read from Python's -X importtime log."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    assert lines, result.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines}


# Not marked slow: each is one short subprocess, and this is the fast path it guards.
@pytest.mark.parametrize(
    "args",
    [["validate", "search.yaml"], ["schema"], ["--help"]],
    ids=["validate", "schema", "help"],
)
def test_reading_commands_import_no_heavy_package(args):
    packages = imported_packages(*args)
    assert "click" in packages  # the log was read
    assert not packages & HEAVY, sorted(packages & HEAVY)


def test_reading_a_finished_sweep_imports_no_ray_or_torch(tmp_path, tracking_uri):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("read-me")
    parent = client.create_run(experiment_id, tags={"sweep.role": "parent"}).info.run_id
    child = client.create_run(
        experiment_id, tags={"mlflow.parentRunId": parent, "sweep.status": "completed"}
    ).info.run_id
    client.log_param(child, "lr", "0.1")
    client.log_metric(child, "val_acc", 0.9, step=1)
    for run_id in (parent, child):
        client.set_terminated(run_id)
    packages = imported_packages(
        "report",
        "read-me",
        "--tracking-uri",
        tracking_uri,
        "-o",
        str(tmp_path / "plots"),
        cwd=tmp_path,
    )
    assert "mlflow" in packages  # the log was read, and the report read the store
    assert not packages & {"ray", "torch"}, sorted(packages & {"ray", "torch"})


def test_the_sweep_driver_prepares_data_and_trials_without_torch():
    # Trials import torch; the driver, which waits on none of it, must not pay seconds for it.
    script = (
        "import sys; from sweeps.driver.sweep_file.reading import load_sweep; from "
        "sweeps.driver.running import launch; from sweeps.driver.planning import plan\n"
        "from sweeps.trial import trainable; from sweeps.driver.events import trial_runs; from "
        "sweeps.driver.tracking import writer\n"
        "from sweeps.driver.running import tuner, fused_sweep; from sweeps.driver.events "
        "import member_events; from sweeps.driver.planning import gpu_share; from "
        "sweeps.trial.fused import trainable\n"
        "config = load_sweep('search.yaml')\n"
        "plan.load_sweep_data(config); plan.plan_sweep(config)\n"
        "print(sorted({'torch', 'sklearn', 'matplotlib'} & {name.split('.')[0] for name in "
        "sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_preview_draws_what_rays_variant_generator_draws():
    # The preview replays Ray's sampling in numpy; this holds it to Ray's own draws,
    # made as BasicVariantGenerator makes them: one seeded generator for every trial.
    from ray.tune.search.sample import _BackwardsCompatibleNumpyRng
    from ray.tune.search.variant_generator import generate_variants

    params = {
        "batch_norm": {"choice": [True, False]},
        "lr": {"log_uniform": [1.0e-5, 1.0]},
        "momentum": {"uniform": [0.5, 0.99]},
        "weight_decay": 0.0,
        "batch_size": {"int_uniform": [16, 18]},
        "activation": {"choice": ["relu", "tanh", "maxout"]},
        "bias_init": {"uniform": [-1, 1]},
    }
    for seed in (0, 3, 12345):
        random_state = _BackwardsCompatibleNumpyRng(seed)
        spec = {"config": build_search_space(params)}
        expected = [
            next(generate_variants(spec, random_state=random_state))[1]["config"] for _ in range(40)
        ]
        preview = preview_trial_configs(params, seed=seed, num_samples=40)
        assert preview == expected
        assert [list(config) for config in preview] == [
            list(config) for config in expected
        ]  # same order
        assert [type(value) for config in preview for value in config.values()] == [
            type(value) for config in expected for value in config.values()
        ]


def test_exit_without_teardown_keeps_exit_handlers_output_and_status():
    script = (
        "import atexit, sys; from cli import exit_without_teardown\n"
        "atexit.register(lambda: print('exit handler ran'))\n"
        "sys.stdout.write('unflushed output'); exit_without_teardown(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3
    assert result.stdout == "unflushed outputexit handler ran\n"


def test_exit_without_teardown_waits_like_sys_exit_while_another_thread_runs():
    release = threading.Event()
    worker = threading.Thread(target=release.wait)  # not a daemon: a plain exit would wait for it
    worker.start()
    try:
        with pytest.raises(SystemExit) as ending:
            exit_without_teardown(4)
        assert ending.value.code == 4
    finally:
        release.set()
        worker.join()


def test_piped_output_arrives_whole_and_bad_input_still_exits_2(tmp_path):
    schema = subprocess.run(
        [*SWEEP, "schema"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"]
    bad = subprocess.run(
        [*SWEEP, "validate", str(tmp_path / "missing.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"{tmp_path / 'missing.yaml'}: no such file"
