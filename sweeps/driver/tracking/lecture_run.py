"""`sweep lecture`'s own MLflow run: the report, its figures, each claim's verdict and numbers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.driver.tracking.batching import (
    MAX_ITEMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
    truncate,
)
from sweeps.driver.tracking.experiment_view import artifact_location
from sweeps.driver.tracking.store import with_store

LECTURE_EXPERIMENT = "lecture"

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def open_lecture_run(tracking_uri: str, *, run_name: str, quick: bool) -> tuple[str, str]:
    """A run for one `sweep lecture` in the experiment `lecture`; returns (experiment id, run
    id)."""

    def open_run(client: MlflowClient) -> tuple[str, str]:
        experiment = client.get_experiment_by_name(LECTURE_EXPERIMENT)
        if experiment is None:
            experiment_id = client.create_experiment(
                LECTURE_EXPERIMENT,
                artifact_location=artifact_location(tracking_uri, LECTURE_EXPERIMENT),
            )
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment_id)
        tags = {"sweep.role": "lecture", "lecture.quick": "true" if quick else "false"}
        return experiment_id, client.create_run(
            experiment_id, run_name=run_name, tags=tags
        ).info.run_id

    return with_store(tracking_uri, open_run)


def close_lecture_run(
    tracking_uri: str,
    run_id: str,
    *,
    files: list[Path],
    metrics: dict[str, float],
    tags: dict[str, str],
    failed: bool,
) -> None:
    """The report and its figures as artifacts under `report/`, the numbers as metrics, the verdicts
    as tags."""
    with_store(
        tracking_uri,
        lambda client: _log(client, run_id, files=files, metrics=metrics, tags=tags, failed=failed),
    )


def _log(
    client: Any,
    run_id: str,
    *,
    files: list[Path],
    metrics: dict[str, float],
    tags: dict[str, str],
    failed: bool,
) -> None:
    from mlflow.entities import Metric, RunTag

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
