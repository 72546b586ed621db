"""`sweep lecture`'s own MLflow run: the report, its figures, each claim's verdict and numbers."""
from __future__ import annotations

import time
from pathlib import Path

from sweeps.driver.tracking.batching import MAX_ITEMS_PER_BATCH, MAX_TAGS_PER_BATCH, truncate
from sweeps.driver.tracking.store import StoreError, quiet_mlflow
from sweeps.errors import first_line

LECTURE_EXPERIMENT = "lecture"


def open_lecture_run(tracking_uri: str, *, run_name: str, quick: bool) -> tuple[str, str]:
    """A run for one `sweep lecture` in the experiment `lecture`; returns (experiment id, run id)."""
    from mlflow.tracking import MlflowClient

    quiet_mlflow()
    client = MlflowClient(tracking_uri)
    try:
        experiment = client.get_experiment_by_name(LECTURE_EXPERIMENT)
        if experiment is not None and experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(LECTURE_EXPERIMENT)
    except Exception as error:  # MLflow raises many types for a store it cannot reach
        raise StoreError(f"cannot reach the MLflow tracking store at {tracking_uri}: {first_line(error)}") from None
    tags = {"sweep.role": "lecture", "lecture.quick": "true" if quick else "false"}
    return experiment_id, client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id


def close_lecture_run(
    tracking_uri: str,
    run_id: str,
    *,
    files: list[Path],
    metrics: dict[str, float],
    tags: dict[str, str],
    failed: bool,
) -> None:
    """The report and its figures as artifacts under `report/`, the numbers as metrics, the verdicts as tags."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    now = int(time.time() * 1000)
    entries = [Metric(key, float(value), now, 0) for key, value in metrics.items()]
    for start in range(0, len(entries), MAX_ITEMS_PER_BATCH):
        client.log_batch(run_id, metrics=entries[start : start + MAX_ITEMS_PER_BATCH])
    labels = [RunTag(key, truncate(value)) for key, value in tags.items()]
    for start in range(0, len(labels), MAX_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=labels[start : start + MAX_TAGS_PER_BATCH])
    for path in files:
        client.log_artifact(run_id, str(path), "report")
    client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
