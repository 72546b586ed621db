"""Every MLflow call sweep makes: the sweep's parent run and one child run per trial.

Only the driver talks to MLflow. Trials report to Tune, and the callback below
turns Tune's events into runs, so workers need no tracking credentials and a
sqlite store never sees writers from several processes.
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterable

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from ray import tune

from sweeps.trial_status import trial_status

# MLflow's log_batch limits per call.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100

TRACKED_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


def resolve_tracking_uri(configured: str | None) -> str:
    """The sweep file's URI, else $MLFLOW_TRACKING_URI, else MLflow's own default."""
    if configured:
        return configured
    import mlflow

    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def open_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if missing (also checks the store answers)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(name)


def start_sweep_run(
    client: MlflowClient,
    experiment_id: str,
    *,
    run_name: str,
    sweep_yaml: str,
    fixed_settings: dict[str, Any],
) -> str:
    """Create the sweep's parent run with its settings and sweep file; returns its id."""
    run = client.create_run(experiment_id, run_name=run_name, tags={"sweep.role": "parent"})
    run_id = run.info.run_id
    _log_params(client, run_id, fixed_settings)
    client.log_text(run_id, sweep_yaml, "search.yaml")
    return run_id


def finish_sweep_run(
    client: MlflowClient,
    run_id: str,
    *,
    metric: str,
    best_value: float | None,
    best_run_id: str | None,
    status_counts: dict[str, int],
) -> None:
    now = _now_ms()
    metrics = [Metric(f"trials_{status}", count, now, 0) for status, count in status_counts.items()]
    tags = []
    if best_value is not None:
        metrics.append(Metric(f"best_{metric}", best_value, now, 0))
    if best_run_id is not None:
        tags.append(RunTag("sweep.best_run_id", best_run_id))
    client.log_batch(run_id, metrics=metrics, tags=tags)
    succeeded = status_counts.get("completed", 0) + status_counts.get("early_stopped", 0)
    client.set_terminated(run_id, "FINISHED" if succeeded else "FAILED")


def fail_sweep_run(client: MlflowClient, run_id: str) -> None:
    """Close the parent run when the sweep itself stopped (an error or Ctrl-C)."""
    client.set_terminated(run_id, "KILLED")


class MlflowTrialLogger(tune.Callback):
    """A Tune callback that keeps one MLflow child run per trial under the sweep's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, *, epochs: int) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.epochs = epochs
        self.run_ids: dict[str, str] = {}
        self._client = MlflowClient(tracking_uri)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.run_ids:
            return
        run = self._client.create_run(
            self.experiment_id,
            tags={
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                MLFLOW_RUN_NAME: str(trial),
                "sweep.trial_id": trial.trial_id,
                "sweep.status": "running",
            },
        )
        self.run_ids[trial.trial_id] = run.info.run_id
        _log_params(self._client, run.info.run_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.run_ids[trial.trial_id]
        epoch = int(result["training_iteration"])
        now = _now_ms()
        metrics = [Metric(key, float(result[key]), now, epoch) for key in TRACKED_METRICS if key in result]
        # One call per epoch carrying all of that epoch's metrics.
        self._client.log_batch(run_id, metrics=metrics)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=True)

    def _finish(self, trial: Any, *, errored: bool) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None:
            return
        status = trial_status(trial.last_result, epochs=self.epochs, errored=errored)
        self._client.set_tag(run_id, "sweep.status", status)
        self._client.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")


def _log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(key, _param_text(value)) for key, value in params.items()]
    for batch in _chunks(items, MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=batch)


def _param_text(value: Any) -> str:
    # YAML spelling (true/false, plain numbers) so params read like the sweep file.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now_ms() -> int:
    return int(time.time() * 1000)
