"""The sweep's parent run: opened with the sweep's settings and file, closed with how it went."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sweeps.driver.tracking.batching import MAX_PARAMS_PER_BATCH, MetricPoint, truncate
from sweeps.driver.tracking.experiment_view import (
    artifact_location,
    mark_sweep_experiment,
    table_columns,
)
from sweeps.driver.tracking.store import with_store
from sweeps.trial_status import SUCCEEDED

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from sweeps.driver.tracking.writer import MlflowWriter


def open_sweep_run(
    tracking_uri: str,
    *,
    experiment_name: str,
    run_name: str,
    sweep_yaml: str,
    params: dict[str, Any],
    refines: str | None = None,
) -> tuple[str, str]:
    """Create the sweep's parent run (and its experiment if missing) with its settings as
    params and its sweep file as an artifact; returns (experiment id, run id)."""
    from mlflow.entities import Param

    columns = table_columns(_sampled_names(params), params.get("search.metric", "val_acc"))

    def open_experiment(client: MlflowClient) -> tuple[MlflowClient, str]:
        experiment_id = _open_experiment(client, experiment_name, tracking_uri=tracking_uri)
        mark_sweep_experiment(client, experiment_id, columns=columns)
        return client, experiment_id

    client, experiment_id = with_store(tracking_uri, open_experiment)
    tags = {"sweep.role": "parent", "sweep.state": "running"}
    if refines:
        tags["sweep.refined_from"] = refines
    run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
    items = [Param(key, param_text(value)) for key, value in params.items()]
    for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])
    client.log_text(run_id, sweep_yaml, "search.yaml")
    return experiment_id, run_id


def _open_experiment(client: MlflowClient, name: str, *, tracking_uri: str) -> str:
    """The id of experiment `name`, created if missing (or restored if deleted)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(tracking_uri, name))


def _sampled_names(params: dict[str, Any]) -> list[str]:
    """The trial params the sweep samples, from the parent run's params (`params.lr` = a
    distribution)."""
    return [
        key.removeprefix("params.")
        for key, value in params.items()
        if key.startswith("params.") and isinstance(value, dict)
    ]


def reopen_sweep_run(tracking_uri: str, run_id: str) -> None:
    """A resumed sweep's parent run is running again (it was left RUNNING, KILLED or FAILED)."""

    def reopen(client: MlflowClient) -> None:
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, "sweep.state", "running")

    with_store(tracking_uri, reopen)


def close_sweep_run(
    writer: MlflowWriter,
    run_id: str,
    *,
    metric: str,
    best_value: float | None,
    best_run_id: str | None,
    status_counts: dict[str, int],
    alerts: list[dict[str, Any]],
) -> None:
    """The sweep ended: its counts, best result and alerting trials, and FINISHED (FAILED if no
    trial succeeded)."""
    now = int(time.time() * 1000)
    metrics = [
        MetricPoint(f"trials_{status}", count, now, 0) for status, count in status_counts.items()
    ]
    metrics.append(MetricPoint("alerts_count", len(alerts), now, 0))
    tags = {}
    alerting = sorted({alert["trial"] for alert in alerts})
    if alerting:
        tags["sweep.alerting_trials"] = truncate(", ".join(alerting))
    if best_value is not None:
        metrics.append(MetricPoint(f"best_{metric}", best_value, now, 0))
    if best_run_id is not None:
        tags["sweep.best_run_id"] = best_run_id
    succeeded = sum(status_counts.get(status, 0) for status in SUCCEEDED)
    tags["sweep.state"] = "finished" if succeeded else "failed"
    writer.log_batch(run_id, metrics=metrics, tags=tags)
    writer.set_terminated(run_id, "FINISHED" if succeeded else "FAILED")


def mark_sweep_interrupted(writer: MlflowWriter, run_id: str, *, signal_name: str) -> None:
    """A signal stopped the sweep: KILLED, with why; `sweep resume` reopens it."""
    writer.log_batch(
        run_id,
        tags={"sweep.state": "interrupted", "sweep.stop_reason": f"interrupted by {signal_name}"},
    )
    writer.set_terminated(run_id, "KILLED")


def mark_sweep_failed(writer: MlflowWriter, run_id: str, *, reason: str) -> None:
    """The sweep itself failed (not a trial): FAILED, with the one-line reason."""
    writer.log_batch(run_id, tags={"sweep.state": "failed", "sweep.failure": truncate(reason)})
    writer.set_terminated(run_id, "FAILED")


def param_text(value: Any) -> str:
    """A value as an MLflow param, spelled as YAML (true/false, plain numbers) so params read like
    the sweep file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


USER_SWEEP_FILE = "sweep-file.yaml"


def log_user_sweep_file(tracking_uri: str, run_id: str, text: str) -> None:
    """The sweep file as the user wrote it (comments and all), for `sweep refine` to edit."""
    with_store(tracking_uri, lambda client: client.log_text(run_id, text, USER_SWEEP_FILE))
