"""What the end-to-end tests share: a sweep whose epochs are long enough to interrupt, and
ways to watch a real `sweep run` subprocess from outside (its experiment folder, Tune's
result files, the MLflow record)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import REPO, SWEEP, assert_slow_test, sweep_runs
from tests.conftest import write_sweep as write_sweep_file

# Small batches make an epoch of digits take a few tenths of a second: long
# enough to kill a process between two epochs, short enough for the suite.
SLOW_EPOCHS = {
    "name": "resilient",
    "model": {"arch": "mlp", "hidden": [32]},
    "params": {"lr": {"log_uniform": [1.0e-3, 1.0e-1]}, "momentum": 0.9, "batch_size": 4},
    # A checkpoint every epoch: the kills below land between two of them.
    "train": {"epochs": 6, "checkpoint_min_interval_s": 0},
    "search": {"num_samples": 1, "max_concurrent": 1, "seed": 5},
    "early_stopping": {"scheduler": "none"},
}


# A small digits sweep the end-to-end tests share: 8 trials of a 32-unit MLP, 4 epochs, ASHA.
DIGITS_SWEEP = {
    "name": "e2e",
    "model": {"arch": "mlp", "hidden": [32]},
    "params": {
        "lr": {"log_uniform": [1.0e-5, 1.0]},
        "activation": {"choice": ["relu", "tanh", "maxout"]},
        "init": {"choice": ["xavier", "he"]},
        "batch_norm": {"choice": [True, False]},
        "momentum": 0.9,
        "batch_size": 128,
    },
    "train": {"epochs": 4},
    "search": {"num_samples": 8, "max_concurrent": 2, "seed": 3},
    "early_stopping": {"grace_period": 1, "reduction_factor": 2},
}


def write_sweep(tmp_path: Path, **changes: dict) -> Path:
    """SLOW_EPOCHS with each given section updated."""
    return write_sweep_file(
        tmp_path,
        {
            **SLOW_EPOCHS,
            **{key: {**SLOW_EPOCHS.get(key, {}), **value} for key, value in changes.items()},
        },
    )


def start_sweep_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """The CLI started as a subprocess, to be watched and signalled (only in a slow test)."""
    assert_slow_test("starts the CLI as a subprocess")
    env = os.environ | {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.Popen(
        [*SWEEP, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until(condition, *, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the sweep exited before {what}:\n{process.stdout.read()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def trial_results(experiment_path: Path) -> dict[str, list[dict]]:
    """Tune's result.json of every trial: one JSON line per reported epoch."""
    results = {}
    for path in experiment_path.glob("*/result.json"):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        results[path.parent.name] = [json.loads(line) for line in lines]
    return results


def experiment_of(storage: Path) -> Path | None:
    found = [path for path in storage.glob("*") if (path / "sweep.json").exists()]
    return found[0] if len(found) == 1 else None


def logged_epochs(client: MlflowClient, run_id: str, key: str = "val_acc") -> list[int]:
    return [metric.step for metric in client.get_metric_history(run_id, key)]


def assert_one_complete_sweep(tracking_uri: str, *, trials: int, epochs: int) -> list:
    """One parent, one child per trial, every epoch logged exactly once, every trial finished."""
    client, parents, children = sweep_runs(tracking_uri, SLOW_EPOCHS["name"])
    assert len(parents) == 1 and len(children) == trials
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["sweep.best_run_id"] in {
        child.info.run_id for child in children
    }  # a real run, not a pending id
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.tags["sweep.status"] == "completed"
        assert child.info.status == "FINISHED"
        for key in ("train_loss", "val_acc"):
            assert logged_epochs(client, child.info.run_id, key) == list(range(1, epochs + 1))
    return children


def run_and_kill_a_worker(
    path: Path, *, storage: Path, tracking_uri: str, ray_address: str, cwd: Path
) -> tuple[subprocess.Popen, str, Path]:
    """`sweep run` of `path`, its trial's Ray worker SIGKILLed once three epochs are recorded:
    the sweep, its output and its experiment folder, once it has ended."""
    sweep = start_sweep_cli(
        "run",
        str(path),
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={storage}",
        cwd=cwd,
    )
    try:
        experiment = wait_until(
            lambda: experiment_of(storage), timeout=120, what="the experiment folder", process=sweep
        )
        results = wait_until(
            lambda: next(
                (lines for lines in trial_results(experiment).values() if len(lines) >= 3), None
            ),
            timeout=120,
            what="three epochs",
            process=sweep,
        )
        os.kill(results[-1]["pid"], signal.SIGKILL)  # the Ray worker training the trial (or group)
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    return sweep, output, experiment
