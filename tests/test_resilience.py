"""Nothing lost: diverging trials, killed workers, a killed driver, MLflow outages, secrets.

Everything here is real: the CLI in a subprocess, the session's Ray cluster, worker
and driver processes killed with SIGKILL, an `mlflow server` stopped and started.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from ray import tune

from sweeps.config import validate_sweep
from sweeps.launch import load_sweep_data, trial_settings
from sweeps.training import divergence, run_training
from sweeps.trial_status import trial_status
from tests.conftest import REPO, SWEEP, free_port, run_sweep_cli

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


def write_sweep(tmp_path: Path, **changes: dict) -> Path:
    sweep = {**SLOW_EPOCHS, **{key: {**SLOW_EPOCHS.get(key, {}), **value} for key, value in changes.items()}}
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def start_sweep_cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([*SWEEP, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


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


def sweep_record(tracking_uri: str, experiment: str):
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    return client, parents, children


def logged_epochs(client: MlflowClient, run_id: str, key: str = "val_acc") -> list[int]:
    return [metric.step for metric in client.get_metric_history(run_id, key)]


def assert_one_complete_sweep(tracking_uri: str, *, trials: int, epochs: int) -> list:
    """One parent, one child per trial, every epoch logged exactly once, every trial finished."""
    client, parents, children = sweep_record(tracking_uri, SLOW_EPOCHS["name"])
    assert len(parents) == 1 and len(children) == trials
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["sweep.best_run_id"] in {child.info.run_id for child in children}  # a real run, not a pending id
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.tags["sweep.status"] == "completed"
        assert child.info.status == "FINISHED"
        for key in ("train_loss", "val_acc"):
            assert logged_epochs(client, child.info.run_id, key) == list(range(1, epochs + 1))
    return children


# Divergence -------------------------------------------------------------------


def test_divergence_is_a_nan_or_inf_or_exploding_loss():
    assert divergence(0.4, num_classes=10, epoch=1) is None
    assert divergence(2.5, num_classes=10, epoch=1) is None  # about chance: slow, not diverged
    assert "nan" in divergence(math.nan, num_classes=10, epoch=3)
    assert "inf" in divergence(math.inf, num_classes=10, epoch=1)
    assert "over 3x chance" in divergence(1.0e7, num_classes=10, epoch=1)
    assert trial_status({"diverged": True, "stop_reason": "diverged: ...", "training_iteration": 1}, epochs=5, errored=False) == "diverged"


def test_a_huge_learning_rate_ends_the_trial_as_diverged_not_as_a_crash():
    config = validate_sweep({**SLOW_EPOCHS, "params": {"lr": 1.0e3, "batch_size": 64}}, source="x.yaml")
    reports = []
    run_training({"lr": 1.0e3, "batch_size": 64}, trial_settings(config), load_sweep_data(config), lambda metrics, checkpoint: reports.append(metrics))
    assert len(reports) < config.train.epochs  # it stopped early...
    assert reports[-1]["diverged"] is True and reports[-1]["stop_reason"].startswith("diverged")  # ...and says why
    assert trial_status({**reports[-1], "training_iteration": len(reports)}, epochs=config.train.epochs, errored=False) == "diverged"


@pytest.mark.slow
def test_learning_rates_up_to_1e3_do_not_take_the_sweep_down(tmp_path, tracking_uri, ray_address):
    path = write_sweep(
        tmp_path,
        params={"lr": {"log_uniform": [1.0e-2, 1.0e3]}, "batch_size": 64},
        train={"epochs": 3},
        search={"num_samples": 4, "max_concurrent": 2, "seed": 1},
    )
    result = run_sweep_cli("run", str(path), "--address", ray_address, "--tracking-uri", tracking_uri,
                           "--set", f"storage.path={tmp_path / 'results'}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "diverged" in result.stdout
    client, parents, children = sweep_record(tracking_uri, "resilient")
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
def test_a_killed_worker_resumes_from_its_checkpoint_in_the_same_run(tmp_path, tracking_uri, ray_address):
    storage = tmp_path / "results"
    path = write_sweep(tmp_path, train={"epochs": 8}, search={"max_failures": 2})
    sweep = start_sweep_cli("run", str(path), "--address", ray_address, "--tracking-uri", tracking_uri,
                            "--set", f"storage.path={storage}", cwd=tmp_path)
    try:
        experiment = wait_until(lambda: experiment_of(storage), timeout=120, what="the experiment folder", process=sweep)
        results = wait_until(
            lambda: next((lines for lines in trial_results(experiment).values() if len(lines) >= 3), None),
            timeout=120, what="three epochs", process=sweep,
        )
        os.kill(results[-1]["pid"], signal.SIGKILL)  # the Ray worker training the trial
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
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
        recorded = [trial.checkpoint for trial in trials if trial.status != "TERMINATED" and trial.checkpoint is not None]
        return [checkpoint for checkpoint in recorded if checkpoint.get_metadata().get("epoch", epochs) < epochs]
    except Exception:  # no snapshot yet, or a file being written
        return []


def kill_driver_mid_sweep(sweep: subprocess.Popen, tracking_uri: str, storage: Path, *, epochs: int, with_checkpoint: bool = False) -> Path:
    """SIGKILL `sweep run` once a trial has finished and another is part-way (and, `with_checkpoint`,
    Tune's snapshot names a checkpoint a part-way trial saved before its last epoch)."""

    def finished_and_midway() -> bool:
        try:
            client, _, children = sweep_record(tracking_uri, "resilient")
        except AttributeError:  # no experiment yet
            return False
        finished = [c for c in children if c.data.tags.get("sweep.status") == "completed"]
        # At most half its epochs in MLflow: MLflow lags the trial by about a second (a few
        # epochs here), and a trial further on may finish before the kill lands.
        midway = [c for c in children if c.data.tags.get("sweep.status") == "running" and 0 < len(logged_epochs(client, c.info.run_id)) <= epochs // 2]
        if not (finished and midway):
            return False
        return not with_checkpoint or bool((experiment := experiment_of(storage)) and midway_checkpoints(experiment, epochs=epochs))

    wait_until(finished_and_midway, timeout=240, what="a finished trial and a part-way one", process=sweep)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait(timeout=30)
    return experiment_of(storage)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sweep resume", "sweep run --resume auto"])
def test_a_killed_driver_resumes_into_the_same_mlflow_runs(tmp_path, tracking_uri, ray_address, how):
    storage = tmp_path / "results"
    # Trials of a few seconds: one that MLflow shows at most half done is still training when the kill lands.
    epochs = 20
    path = write_sweep(tmp_path, train={"epochs": epochs}, search={"num_samples": 4, "max_concurrent": 2})
    common = ["--address", ray_address]
    sweep = start_sweep_cli("run", str(path), *common, "--tracking-uri", tracking_uri, "--set", f"storage.path={storage}", cwd=tmp_path)
    try:
        experiment = kill_driver_mid_sweep(sweep, tracking_uri, storage, epochs=epochs)
    finally:
        sweep.kill()
    _, _, children = sweep_record(tracking_uri, "resilient")
    assert any(child.data.tags["sweep.status"] == "running" for child in children)  # it really was cut short

    if how == "sweep resume":
        # The tracking URI and address come from the experiment's journal and the flag.
        resumed = run_sweep_cli("resume", str(experiment), *common, cwd=tmp_path)
    else:
        resumed = run_sweep_cli("run", str(path), *common, "--resume", "auto", "--tracking-uri", tracking_uri,
                                "--set", f"storage.path={storage}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "4 completed" in resumed.stdout, resumed.stdout + resumed.stderr
    assert_one_complete_sweep(tracking_uri, trials=4, epochs=epochs)
    assert experiment_of(storage) == experiment  # resumed in place, no second experiment

    if how == "sweep run --resume auto":
        # Finished now: the same command starts a fresh sweep instead of resuming it again.
        again = run_sweep_cli("run", str(path), *common, "--resume", "auto", "--tracking-uri", tracking_uri,
                              "--set", f"storage.path={storage}", "--set", "search.num_samples=1",
                              "--set", "train.epochs=1", cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "resuming" not in again.stdout
        assert len(sweep_record(tracking_uri, "resilient")[1]) == 2


@pytest.mark.slow
def test_a_trial_whose_recorded_checkpoint_vanished_resumes_from_the_newest_one(tmp_path, tracking_uri, ray_address):
    # Tune deletes a checkpoint once newer ones are saved, but records that in its snapshot a
    # moment later: a driver killed in between leaves a snapshot naming a deleted checkpoint
    # (seen once on CI). Here the kill lands once the snapshot names a part-way trial's
    # checkpoint, and that folder is then moved past the newest, as Tune's deletion leaves it.
    storage = tmp_path / "results"
    epochs = 20
    path = write_sweep(tmp_path, train={"epochs": epochs}, search={"num_samples": 4, "max_concurrent": 2})
    common = ["--address", ray_address, "--tracking-uri", tracking_uri, "--set", f"storage.path={storage}"]
    sweep = start_sweep_cli("run", str(path), *common, cwd=tmp_path)
    try:
        experiment = kill_driver_mid_sweep(sweep, tracking_uri, storage, epochs=epochs, with_checkpoint=True)
    finally:
        sweep.kill()
    checkpoint = Path(midway_checkpoints(experiment, epochs=epochs)[0].path)
    trial_folder = checkpoint.parent
    newest_index = max(int(folder.name.removeprefix("checkpoint_")) for folder in trial_folder.glob("checkpoint_*"))
    newer = trial_folder / f"checkpoint_{newest_index + 1:06d}"
    checkpoint.rename(newer)
    saved_epoch = json.loads((newer / ".metadata.json").read_text())["epoch"]

    resumed = run_sweep_cli("run", str(path), *common, "--resume", "auto", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "4 completed" in resumed.stdout, resumed.stdout + resumed.stderr
    assert_one_complete_sweep(tracking_uri, trials=4, epochs=epochs)
    lines = trial_results(experiment)[trial_folder.name]
    restarts = [line for line in lines if line["iterations_since_restore"] == 1]
    assert restarts[-1]["training_iteration"] == saved_epoch + 1  # from the newer checkpoint, not from epoch 1
    assert lines[-1]["training_iteration"] == epochs


def test_resume_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    result = run_sweep_cli("resume", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "sweep.json" in result.stderr and "Traceback" not in result.stderr


# MLflow outages ----------------------------------------------------------------------


def test_an_unreachable_tracking_server_fails_before_any_trial(tmp_path, ray_address):
    url = f"http://127.0.0.1:{free_port()}"
    path = write_sweep(tmp_path)
    result = run_sweep_cli("run", str(path), "--address", ray_address, "--tracking-uri", url,
                           "--set", f"storage.path={tmp_path / 'results'}", cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert url in result.stderr and "Traceback" not in result.stderr
    assert not any((tmp_path / "results").glob("*"))  # no experiment was started


def test_an_unreachable_ray_address_fails_at_once_and_writes_nothing(tmp_path):
    # Ray itself would retry this address for minutes, warning every few seconds.
    address = f"127.0.0.1:{free_port()}"
    path = write_sweep(tmp_path)
    result = run_sweep_cli("run", str(path), "--address", address, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                           "--set", f"storage.path={tmp_path / 'results'}", cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot connect to the Ray cluster at {address}" in result.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "results").exists()


def test_an_unwritable_storage_path_fails_before_anything_is_written(tmp_path, tracking_uri):
    path = write_sweep(tmp_path)
    result = run_sweep_cli("run", str(path), "--tracking-uri", tracking_uri, "--set", "storage.path=/proc/sweep-results", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "storage.path" in result.stderr and "/proc/sweep-results" in result.stderr
    assert MlflowClient(tracking_uri).get_experiment_by_name("resilient") is None


def start_sweep_until_epochs(tmp_path: Path, path: Path, tracking_uri: str, ray_address: str, *, epochs: int):
    """`sweep run` in the background, once its first trial has reported `epochs` epochs."""
    storage = tmp_path / "results"
    sweep = start_sweep_cli("run", str(path), "--address", ray_address, "--tracking-uri", tracking_uri,
                            "--set", f"storage.path={storage}", cwd=tmp_path)
    try:
        experiment = wait_until(lambda: experiment_of(storage), timeout=120, what="the experiment folder", process=sweep)
        wait_until(lambda: any(len(lines) >= epochs for lines in trial_results(experiment).values()), timeout=120,
                   what=f"{epochs} epochs", process=sweep)
    except BaseException:
        sweep.kill()
        raise
    return sweep, experiment


@pytest.mark.slow
def test_a_tracking_server_restart_mid_sweep_loses_nothing(tmp_path, mlflow_server, ray_address):
    # Long enough (about 30 s) to still be training when the restarted server answers.
    path = write_sweep(tmp_path, train={"epochs": 10}, search={"num_samples": 16, "max_concurrent": 1})
    sweep, experiment = start_sweep_until_epochs(tmp_path, path, mlflow_server.url, ray_address, epochs=2)
    try:
        mlflow_server.stop()
        spool = experiment / "mlflow-spool.jsonl"
        wait_until(lambda: spool.exists() and spool.read_text().strip(), timeout=120, what="writes kept in the spool", process=sweep)
        epochs_before_restart = sum(len(lines) for lines in trial_results(experiment).values())
        mlflow_server.start()
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    assert sweep.returncode == 0, output
    assert "does not answer" in output
    # Sent while the sweep was still training, without `sweep sync`.
    assert "answers again" in output.split("finished:")[0], output
    assert epochs_before_restart < 16 * 10
    assert_one_complete_sweep(mlflow_server.url, trials=16, epochs=10)
    assert not spool.read_text().strip()


@pytest.mark.slow
def test_logs_kept_through_an_outage_are_sent_by_sweep_sync(tmp_path, mlflow_server, ray_address):
    path = write_sweep(tmp_path, search={"num_samples": 2, "max_concurrent": 1})
    sweep, experiment = start_sweep_until_epochs(tmp_path, path, mlflow_server.url, ray_address, epochs=1)
    try:
        mlflow_server.stop()
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    # Every trial trained; what MLflow missed waits with the experiment, and the user is told how to send it.
    assert sweep.returncode == 0, output
    assert "2 completed" in output and f"sweep sync {experiment}" in output

    unreachable = run_sweep_cli("sync", str(experiment), cwd=tmp_path, timeout=120)
    assert unreachable.returncode == 2 and mlflow_server.url in unreachable.stderr

    mlflow_server.start()
    synced = run_sweep_cli("sync", str(experiment), cwd=tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    children = assert_one_complete_sweep(mlflow_server.url, trials=2, epochs=6)
    client = MlflowClient(mlflow_server.url)
    assert all(client.list_artifacts(child.info.run_id) for child in children)  # histograms made it too


# Secrets -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_tracking_token_from_the_environment_is_stored_nowhere(tmp_path, mlflow_server, ray_address):
    token = "s3cr3t-token-7f2c9a"
    path = write_sweep(tmp_path, train={"epochs": 2})
    env = os.environ | {"RAY_AUTH_MODE": "token", "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_TOKEN": token,
                        "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": token}
    result = subprocess.run(
        [*SWEEP, "run", str(path), "--address", ray_address, "--tracking-uri", mlflow_server.url,
         "--set", f"storage.path={tmp_path / 'results'}", "-v"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert token not in result.stdout + result.stderr
    mlflow_server.stop()  # flush the store to disk
    # The MLflow store (database and artifacts), the experiment folder, the sweep file: every byte.
    leaks = [path for path in tmp_path.rglob("*") if path.is_file() and token.encode() in path.read_bytes()]
    assert leaks == []
    assert any((tmp_path / "results").rglob("tuner.pkl"))  # the pickled experiment was among them
