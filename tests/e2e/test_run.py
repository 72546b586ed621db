"""`sweep run` end to end: the real CLI in a subprocess, real Ray, a real MLflow sqlite store."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweeps.driver.sweep_file.distributions import preview_trial_configs
from sweeps.driver.sweep_file.reading import load_sweep
from tests.conftest import REPO, run_sweep_cli, sweep_runs, write_sweep
from tests.e2e.conftest import DIGITS_SWEEP

pytestmark = pytest.mark.slow


def test_run_records_one_parent_and_a_child_per_trial(tmp_path, tracking_uri, ray_address):
    path = write_sweep(tmp_path, DIGITS_SWEEP)
    elsewhere = tmp_path / "elsewhere"  # the command runs in another folder than the store's
    elsewhere.mkdir()
    result = run_sweep_cli(
        "run",
        str(path),
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=elsewhere,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8/8 done" in result.stdout and "best val_acc:" in result.stdout
    check_what_a_person_reads(result.stdout, tracking_uri, path, elsewhere)

    client, parents, children = sweep_runs(tracking_uri, "e2e")
    assert len(parents) == 1 and len(children) == 8
    parent = parents[0]
    assert all(child.data.tags["mlflow.parentRunId"] == parent.info.run_id for child in children)

    # The trials trained are exactly the ones the seed samples (the file's key order matters).
    expected = preview_trial_configs(load_sweep(path).params, seed=3, num_samples=8)
    logged = [
        {key: yaml.safe_load(value) for key, value in child.data.params.items()}
        for child in children
    ]
    assert sorted(logged, key=lambda c: c["lr"]) == sorted(expected, key=lambda c: c["lr"])
    assert all(set(params) == set(DIGITS_SWEEP["params"]) for params in logged)

    statuses = []
    for child in children:
        epochs = [m.step for m in client.get_metric_history(child.info.run_id, "val_acc")]
        for name in ("train_loss", "train_acc", "val_loss"):
            assert [m.step for m in client.get_metric_history(child.info.run_id, name)] == epochs
        assert epochs == list(range(1, len(epochs) + 1))  # 1-based, gap-free, none twice
        status = child.data.tags["sweep.status"]
        assert status == ("completed" if len(epochs) == 4 else "early_stopped")
        assert child.info.status == "FINISHED"
        statuses.append(status)
    # lr spans five decades with ASHA halving at every epoch: the slow learners are cut.
    assert "early_stopped" in statuses and "completed" in statuses

    best = max(
        children,
        key=lambda run: max(m.value for m in client.get_metric_history(run.info.run_id, "val_acc")),
    )
    best_value = max(m.value for m in client.get_metric_history(best.info.run_id, "val_acc"))
    assert parent.data.metrics["best_val_acc"] == pytest.approx(best_value)
    assert parent.data.tags["sweep.best_run_id"] == best.info.run_id
    assert parent.data.params["train.epochs"] == "4"
    assert parent.data.params["params.momentum"] == "0.9"
    assert parent.info.status == "FINISHED"
    sweep_file = yaml.safe_load(
        Path(
            client.download_artifacts(parent.info.run_id, "search.yaml", str(tmp_path))
        ).read_text()
    )
    assert sweep_file["params"] == DIGITS_SWEEP["params"] and sweep_file["train"]["epochs"] == 4
    assert sweep_file["mlflow"]["tracking_uri"] is None  # a URI may hold credentials
    assert "train.epochs" in parent.data.params and not any(
        key.startswith("mlflow.tracking") for key in parent.data.params
    )
    assert (tmp_path / "results").is_dir() and any((tmp_path / "results").iterdir())


def test_embedded_ray_runs_the_default_sweep_file_shape(tmp_path, tracking_uri):
    """No --address: Ray starts inside the process, as on a laptop."""
    repo_sweep = REPO / "search.yaml"
    result = run_sweep_cli(
        "run",
        str(repo_sweep),
        "--tracking-uri",
        tracking_uri,
        "--num-samples",
        "2",
        "--set",
        "train.epochs=1",
        "--set",
        "early_stopping.grace_period=1",
        "--set",
        "params.lr=0.05",
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _, parents, children = sweep_runs(tracking_uri, "digits-cs231n")
    assert len(parents) == 1 and len(children) == 2
    assert all(child.data.tags["sweep.status"] == "completed" for child in children)
    assert all(math.isfinite(child.data.metrics["val_acc"]) for child in children)


def test_no_trial_succeeding_exits_1_and_marks_trials_failed(tmp_path, tracking_uri, ray_address):
    # Batch norm cannot normalize batches of one example: every trial raises.
    sweep = DIGITS_SWEEP | {
        "params": {"lr": 0.1, "batch_size": 1, "batch_norm": True},
        # no retries: each trial fails once, which is what this test is about
        "search": {"num_samples": 2, "max_failures": 0},
    }
    result = run_sweep_cli(
        "run",
        str(write_sweep(tmp_path, sweep)),
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no trial succeeded" in result.stderr
    assert "Expected more than 1 value per channel" in result.stderr
    _, parents, children = sweep_runs(tracking_uri, "e2e")
    assert [child.data.tags["sweep.status"] for child in children] == ["failed", "failed"]
    assert parents[0].info.status == "FAILED"


def test_bad_config_writes_nothing(tmp_path, tracking_uri):
    path = write_sweep(tmp_path, DIGITS_SWEEP | {"train": {"epochs": "many"}})
    result = run_sweep_cli(
        "run",
        str(path),
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"{path}: train.epochs: input should be a valid integer, unable to parse string as "
        "an integer, got 'many'"
    )
    assert MlflowClient(tracking_uri).get_experiment_by_name("e2e") is None
    assert not (tmp_path / "results").exists()


def test_cnn_sweep_on_synthetic_images_checkpoints_every_trial(tmp_path, tracking_uri, ray_address):
    import torch

    sweep = {
        "name": "cnn-synthetic",
        "data": {
            "dataset": "synthetic",
            "preprocess": "standardize",
            "synthetic": {"num_examples": 96, "num_classes": 3, "shape": [3, 16, 16]},
        },
        "model": {"arch": "cnn", "channels": [8, 16]},
        "params": {
            "lr": {"log_uniform": [1.0e-2, 1.0e-1]},
            "activation": "relu",
            "init": "he",
            "batch_norm": True,
            "batch_size": 32,
        },
        "train": {"epochs": 2, "checkpoint_min_interval_s": 0},
        "search": {"num_samples": 2},
        "early_stopping": {"scheduler": "none"},
    }
    results = tmp_path / "results"
    result = run_sweep_cli(
        "run",
        str(write_sweep(tmp_path, sweep)),
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={results}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _, _, children = sweep_runs(tracking_uri, "cnn-synthetic")
    assert sorted(child.data.tags["sweep.status"] for child in children) == [
        "completed",
        "completed",
    ]
    checkpoints = sorted(results.glob("cnn-synthetic-*/*/checkpoint_*/trial.pt"))
    assert len(checkpoints) == 4  # 2 trials x 2 epochs, within the 2 kept per trial
    saved = torch.load(checkpoints[-1], weights_only=False)
    assert saved["preprocess"]["name"] == "standardize" and set(saved["preprocess"]["stats"]) == {
        "mean",
        "std",
    }
    assert saved["epoch"] in (1, 2) and "model" in saved and "optimizer" in saved


def check_what_a_person_reads(stdout: str, tracking_uri: str, path: Path, cwd: Path) -> None:
    """Start-up lines before any trial, readable run names, the UI link on the runs table, artifacts
    beside the store."""
    lines = stdout.splitlines()
    first_trial = next(
        index for index, line in enumerate(lines) if re.match(r"\[ *[\d.]+s\] t\d\d ", line)
    )
    startup = "\n".join(lines[:first_trial])
    for step in (
        "joining the Ray cluster at",
        "loading the data: digits",
        "opening the MLflow store",
        "Ray is up",
    ):
        assert step in startup, startup
    client, parents, children = sweep_runs(tracking_uri, "e2e")
    for child in children:
        number = int(child.data.tags["sweep.trial_id"].rsplit("_", 1)[1])
        name = child.info.run_name
        assert (
            name.startswith(f"t{number:02d} {child.data.params['activation']} ") and "lr=" in name
        ), name
        assert ("no-bn" in name) == (child.data.params["batch_norm"] == "false")
    experiment = client.get_experiment_by_name("e2e")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    columns = json.loads(json.loads(experiment.tags["mlflow.sharedViewState.sweep"])["state"])[
        "selectedColumns"
    ]
    assert {
        "metrics.`val_acc`",
        "params.`lr`",
        "params.`activation`",
        "params.`batch_norm`",
    } <= set(columns)
    assert (
        f"#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=sweep"
        in stdout
    )
    assert "-o e2e-refine-1.yaml" in stdout
    database_folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
    assert (
        experiment.artifact_location == f"file://{database_folder / 'mlruns' / 'e2e'}"
        and not (cwd / "mlruns").exists()
    )
    logged = client.download_artifacts(parents[0].info.run_id, "sweep-file.yaml", str(cwd))
    assert Path(logged).read_text() == path.read_text()  # as the user wrote it, for `sweep refine`
