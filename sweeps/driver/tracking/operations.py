"""What each queued write does to the store: one MLflow client call per operation, with the
run ids it names resolved, and which failures mean the store did not answer."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

# A store that does not answer (retry, then spool), as against one that refuses a write.
OUTAGE_ERROR_CODES = ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")
PENDING_RUN_ID = re.compile(rb"pending:[\w-]+")


def is_outage(error: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code in OUTAGE_ERROR_CODES
    # requests' and sqlalchemy's connection errors, without importing either here.
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"ConnectionError", "Timeout", "TimeoutError", "OperationalError"})


def create_run(client: MlflowClient, operation: dict[str, Any]) -> str:
    run = client.create_run(operation["experiment_id"], tags=operation["tags"])
    return str(run.info.run_id)


def created_run(client: MlflowClient, operation: dict[str, Any]) -> str | None:
    """The run an earlier try of this create_run made, if it reached the store before the
    driver died."""
    tags = operation["tags"]
    if "sweep.trial_id" not in tags:
        return None
    filters = [f"tags.`sweep.trial_id` = '{tags['sweep.trial_id']}'"]
    if MLFLOW_PARENT_RUN_ID in tags:
        filters.append(f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{tags[MLFLOW_PARENT_RUN_ID]}'")
    runs = client.search_runs(
        [operation["experiment_id"]], filter_string=" and ".join(filters), max_results=1
    )
    return str(runs[0].info.run_id) if runs else None


def send_to_run(
    client: MlflowClient,
    operation: dict[str, Any],
    *,
    run_id: Callable[[str], str],
    content: bytes | None = None,
) -> None:
    """A write to an existing run; `run_id` turns the pending ids a write names into real ones,
    `content` is a log_bytes write's artifact."""
    kind, target = operation["op"], run_id(operation["run_id"])
    if kind == "log_batch":
        client.log_batch(
            target,
            metrics=[Metric(*item) for item in operation["metrics"]],
            params=[Param(*item) for item in operation["params"]],
            # A tag may name another run by its pending id (the sweep's sweep.best_run_id).
            tags=[RunTag(key, run_id(value)) for key, value in operation["tags"]],
        )
    elif kind == "set_terminated":
        client.set_terminated(target, operation["status"])
    elif kind == "reopen_run":
        client.update_run(target, status="RUNNING")
    elif kind == "log_bytes":
        assert content is not None, "a log_bytes write without its artifact"
        if operation["name"].endswith(".json"):
            # An alert names its run by the pending id it had: the run made since replaces it.
            content = PENDING_RUN_ID.sub(
                lambda match: run_id(match.group().decode()).encode(), content
            )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / operation["name"]
            path.write_bytes(content)
            client.log_artifact(target, str(path))
