"""MLflow writes merged into few calls, each within MLflow's per-call limits.

A store pays far more per call (a sqlite transaction, an HTTP request) than per
metric, so a run's consecutive log_batch writes become one call where they fit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple


class MetricPoint(NamedTuple):
    """One value of a metric, as MLflow keeps it: at a step, stamped in milliseconds."""

    key: str
    value: float
    timestamp: int
    step: int


# MLflow's log_batch limits per call.
MAX_ITEMS_PER_BATCH = 1000  # metrics, params and tags together
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_TAG_LENGTH = 5000


def merge_log_batches(
    operations: list[dict[str, Any]], *, items: list | None = None
) -> list[tuple[dict[str, Any], list]]:
    """The writes as calls, each run's consecutive log_batch writes merged within MLflow's
    per-call limits, with the `items` (default: the writes) each call covers. A run's
    writes keep their order; runs are independent of each other."""
    items = operations if items is None else items
    calls: list[tuple[dict[str, Any], list]] = []
    # run id -> the merged call still taking writes
    open_batch: dict[str, tuple[dict[str, Any], list]] = {}
    for operation, item in zip(operations, items, strict=True):
        run_id: str = operation.get("run_id", "")
        if operation["op"] != "log_batch":
            open_batch.pop(run_id, None)  # later writes to this run come after this one
            calls.append((operation, [item]))
            continue
        for part in _within_limits(operation):
            if run_id not in open_batch or not _fits(open_batch[run_id][0], part):
                open_batch[run_id] = (empty_batch(run_id), [])
                calls.append(open_batch[run_id])
            batch, covered = open_batch[run_id]
            batch["metrics"] += part["metrics"]
            batch["params"] += part["params"]
            # A tag written twice keeps its later value (one call may not carry a key twice).
            batch["tags"] = [
                list(tag) for tag in (dict(batch["tags"]) | dict(part["tags"])).items()
            ]
            if not covered or covered[-1] is not item:
                covered.append(item)
    return calls


def empty_batch(run_id: str) -> dict[str, Any]:
    return {"op": "log_batch", "run_id": run_id, "metrics": [], "params": [], "tags": []}


def _within_limits(operation: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """A log_batch write cut into parts that each fit one call."""
    part = empty_batch(operation["run_id"])
    for kind in ("params", "tags", "metrics"):
        for item in operation[kind]:
            single = {"metrics": [], "params": [], "tags": [], kind: [item]}
            if not _fits(part, single):
                yield part
                part = empty_batch(operation["run_id"])
            part[kind].append(item)
    yield part


def _fits(batch: dict[str, Any], operation: dict[str, Any]) -> bool:
    metrics = len(batch["metrics"]) + len(operation["metrics"])
    params = len(batch["params"]) + len(operation["params"])
    tags = len(batch["tags"]) + len(operation["tags"])
    return (
        metrics + params + tags <= MAX_ITEMS_PER_BATCH
        and params <= MAX_PARAMS_PER_BATCH
        and tags <= MAX_TAGS_PER_BATCH
    )


def truncate(text: str, limit: int = MAX_TAG_LENGTH) -> str:
    """A tag value within MLflow's length limit."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
