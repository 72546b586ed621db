"""Nothing lost: diverging trials, killed workers, a killed driver, MLflow outages, secrets.

Everything here is real: the CLI in a subprocess, the session's Ray cluster, worker
and driver processes killed with SIGKILL, an `mlflow server` stopped and started.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
from pathlib import Path

import pytest
from ray import tune

from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data
from sweeps.driver.sweep_file.validation import validate_sweep
from sweeps.trial.training import divergence, run_training
from sweeps.trial_status import trial_status
from tests.conftest import invoke, run_sweep_cli, sweep_runs
from tests.e2e.conftest import (
    SLOW_EPOCHS,
    assert_one_complete_sweep,
    experiment_of,
    logged_epochs,
    run_and_kill_a_worker,
    start_sweep_cli,
    trial_results,
    wait_until,
    write_sweep,
)

# Divergence -------------------------------------------------------------------


def test_divergence_is_a_nan_or_inf_or_exploding_loss():
    assert divergence(0.4, num_classes=10, epoch=1) is None
    assert divergence(2.5, num_classes=10, epoch=1) is None  # about chance: slow, not diverged
    assert "nan" in divergence(math.nan, num_classes=10, epoch=3)
    assert "inf" in divergence(math.inf, num_classes=10, epoch=1)
    assert "over 3x chance" in divergence(1.0e7, num_classes=10, epoch=1)
    assert (
        trial_status(
            {"diverged": True, "stop_reason": "diverged: ...", "training_iteration": 1},
            epochs=5,
            errored=False,
        )
        == "diverged"
    )


def test_a_huge_learning_rate_ends_the_trial_as_diverged_not_as_a_crash():
    config = validate_sweep(
        {**SLOW_EPOCHS, "params": {"lr": 1.0e3, "batch_size": 64}}, source="x.yaml"
    )
    reports = []
    run_training(
        {"lr": 1.0e3, "batch_size": 64},
        build_trial_settings(config),
        load_sweep_data(config),
        lambda metrics, checkpoint: reports.append(metrics),
    )
    assert len(reports) < config.train.epochs  # it stopped early...
    # ...and says why
    assert reports[-1]["diverged"] is True and reports[-1]["stop_reason"].startswith("diverged")
    assert (
        trial_status(
            {**reports[-1], "training_iteration": len(reports)},
            epochs=config.train.epochs,
            errored=False,
        )
        == "diverged"
    )


@pytest.mark.slow
def test_learning_rates_up_to_1e3_do_not_take_the_sweep_down(tmp_path, tracking_uri, ray_address):
    path = write_sweep(
        tmp_path,
        params={"lr": {"log_uniform": [1.0e-2, 1.0e3]}, "batch_size": 64},
        train={"epochs": 3},
        search={"num_samples": 4, "max_concurrent": 2, "seed": 1},
    )
    result = run_sweep_cli(
        "run",
        str(path),
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "diverged" in result.stdout
    client, parents, children = sweep_runs(tracking_uri, "resilient")
    statuses = {child.data.params["lr"]: child.data.tags["sweep.status"] for child in children}
    assert len(children) == 4
    assert "completed" in statuses.values() and "diverged" in statuses.values(), statuses
    for child in children:
        if child.data.tags["sweep.status"] == "diverged":
            assert float(child.data.params["lr"]) > 1.0
            assert child.data.tags["sweep.stop_reason"].startswith("diverged")
            assert child.info.status == "FINISHED"  # the trial ended as designed; nothing crashed
    assert parents[0].data.metrics["trials_diverged"] >= 1


# Retries after a worker dies ---------------------------------------------------------


@pytest.mark.slow
def test_a_killed_worker_resumes_from_its_checkpoint_in_the_same_run(
    tmp_path, tracking_uri, ray_address
):
    storage = tmp_path / "results"
    path = write_sweep(tmp_path, train={"epochs": 8}, search={"max_failures": 2})
    sweep, output, experiment = run_and_kill_a_worker(
        path, storage=storage, tracking_uri=tracking_uri, ray_address=ray_address, cwd=tmp_path
    )
    assert sweep.returncode == 0, output
    assert "1 completed" in output

    (lines,) = trial_results(experiment).values()
    restarts = [line for line in lines if line["iterations_since_restore"] == 1]
    assert len(restarts) == 2  # the first start and the retry
    killed_after = restarts[1]["training_iteration"] - 1
    assert killed_after >= 3  # it went on from its checkpoint, not from epoch 1
    assert restarts[1]["pid"] != restarts[0]["pid"]
    assert lines[-1]["training_iteration"] == 8

    (child,) = assert_one_complete_sweep(tracking_uri, trials=1, epochs=8)
    assert child.data.tags["sweep.retries"] == "1"


# Resume after the driver dies ----------------------------------------------------------


def midway_checkpoints(experiment: Path, *, epochs: int) -> list[tune.Checkpoint]:
    """The checkpoints Tune's experiment snapshot names for unfinished trials, where one
    is there and was saved before the trial's last epoch."""
    try:
        trials = tune.ExperimentAnalysis(str(experiment)).trials
        recorded = [
            trial.checkpoint
            for trial in trials
            if trial.status != "TERMINATED" and trial.checkpoint is not None
        ]
        return [
            checkpoint
            for checkpoint in recorded
            if checkpoint.get_metadata().get("epoch", epochs) < epochs
        ]
    except Exception:  # no snapshot yet, or a file being written
        return []


def kill_driver_mid_sweep(
    sweep: subprocess.Popen,
    tracking_uri: str,
    storage: Path,
    *,
    epochs: int,
    with_checkpoint: bool = False,
) -> Path:
    """SIGKILL `sweep run` once a trial has finished and another is part-way (and,
    `with_checkpoint`,
    Tune's snapshot names a checkpoint a part-way trial saved before its last epoch)."""

    def finished_and_midway() -> bool:
        try:
            client, _, children = sweep_runs(tracking_uri, "resilient")
        except AttributeError:  # no experiment yet
            return False
        finished = [c for c in children if c.data.tags.get("sweep.status") == "completed"]
        # At most half its epochs in MLflow: MLflow lags the trial by about a second (a few
        # epochs here), and a trial further on may finish before the kill lands.
        midway = [
            c
            for c in children
            if c.data.tags.get("sweep.status") == "running"
            and 0 < len(logged_epochs(client, c.info.run_id)) <= epochs // 2
        ]
        if not (finished and midway):
            return False
        return not with_checkpoint or bool(
            (experiment := experiment_of(storage)) and midway_checkpoints(experiment, epochs=epochs)
        )

    wait_until(
        finished_and_midway, timeout=240, what="a finished trial and a part-way one", process=sweep
    )
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(timeout=30)
    return experiment_of(storage)


@pytest.mark.slow
def test_a_killed_driver_resumes_into_the_same_mlflow_runs(tmp_path, tracking_uri, ray_address):
    # `sweep resume` here; `sweep run --resume auto` resumes a killed driver in the test below.
    storage = tmp_path / "results"
    # Trials of a few seconds: one that MLflow shows at most half done is still training when the
    # kill lands.
    # Unfused: a finished trial beside a part-way one needs trials with timelines of their own (the
    # members of a fused group end together); tests/e2e/test_fused.py resumes a fused sweep.
    epochs = 12
    path = write_sweep(
        tmp_path,
        train={"epochs": epochs, "fuse": "off"},
        search={"num_samples": 4, "max_concurrent": 2},
    )
    common = ["--address", ray_address]
    sweep = start_sweep_cli(
        "run",
        str(path),
        *common,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={storage}",
        cwd=tmp_path,
    )
    try:
        experiment = kill_driver_mid_sweep(sweep, tracking_uri, storage, epochs=epochs)
    finally:
        sweep.kill()
    _, _, children = sweep_runs(tracking_uri, "resilient")
    # it really was cut short
    assert any(child.data.tags["sweep.status"] == "running" for child in children)

    # The tracking URI and address come from the experiment's journal and the flag.
    resumed = run_sweep_cli("resume", str(experiment), *common, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "4 completed" in resumed.stdout, resumed.stdout + resumed.stderr
    assert_one_complete_sweep(tracking_uri, trials=4, epochs=epochs)
    assert experiment_of(storage) == experiment  # resumed in place, no second experiment


@pytest.mark.slow
def test_a_trial_whose_recorded_checkpoint_vanished_resumes_from_the_newest_one(
    tmp_path, tracking_uri, ray_address
):
    # Tune deletes a checkpoint once newer ones are saved, but records that in its snapshot a
    # moment later: a driver killed in between leaves a snapshot naming a deleted checkpoint
    # (seen once on CI). Here the kill lands once the snapshot names a part-way trial's
    # checkpoint, and that folder is then moved past the newest, as Tune's deletion leaves it.
    storage = tmp_path / "results"
    epochs = 12
    # Unfused, as the test above: it needs a finished trial beside a part-way one.
    path = write_sweep(
        tmp_path,
        train={"epochs": epochs, "fuse": "off"},
        search={"num_samples": 4, "max_concurrent": 2},
    )
    common = [
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={storage}",
    ]
    sweep = start_sweep_cli("run", str(path), *common, cwd=tmp_path)
    try:
        experiment = kill_driver_mid_sweep(
            sweep, tracking_uri, storage, epochs=epochs, with_checkpoint=True
        )
    finally:
        sweep.kill()
    checkpoint = Path(midway_checkpoints(experiment, epochs=epochs)[0].path)
    trial_folder = checkpoint.parent
    newest_index = max(
        int(folder.name.removeprefix("checkpoint_")) for folder in trial_folder.glob("checkpoint_*")
    )
    newer = trial_folder / f"checkpoint_{newest_index + 1:06d}"
    checkpoint.rename(newer)
    saved_epoch = json.loads((newer / ".metadata.json").read_text())["epoch"]

    resumed = run_sweep_cli("run", str(path), *common, "--resume", "auto", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "4 completed" in resumed.stdout, resumed.stdout + resumed.stderr
    assert_one_complete_sweep(tracking_uri, trials=4, epochs=epochs)
    lines = trial_results(experiment)[trial_folder.name]
    restarts = [line for line in lines if line["iterations_since_restore"] == 1]
    # from the newer checkpoint, not from epoch 1
    assert restarts[-1]["training_iteration"] == saved_epoch + 1
    assert lines[-1]["training_iteration"] == epochs
    assert experiment_of(storage) == experiment  # resumed in place, no second experiment

    # Finished now: the same command starts a fresh sweep instead of resuming it again.
    again = run_sweep_cli(
        "run",
        str(path),
        *common,
        "--resume",
        "auto",
        "--set",
        "search.num_samples=1",
        "--set",
        "train.epochs=1",
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming" not in again.stdout
    assert len(sweep_runs(tracking_uri, "resilient")[1]) == 2


def test_resume_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    result = invoke("resume", str(tmp_path))
    assert result.exit_code == 2
    assert (
        result.stderr.strip().count("\n") == 0
        and "sweep.json" in result.stderr
        and "Traceback" not in result.stderr
    )
