"""Queued MLflow writes merged into few calls, within MLflow's per-call limits."""

from __future__ import annotations

from sweeps.driver.tracking.batching import (
    MAX_ITEMS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    merge_log_batches,
)


def log_batch(run_id: str, *, metrics=(), params=(), tags=()) -> dict:
    return {
        "op": "log_batch",
        "run_id": run_id,
        "metrics": list(metrics),
        "params": list(params),
        "tags": list(tags),
    }


def test_a_runs_consecutive_batches_become_one_call_and_runs_keep_their_order():
    queued = [
        log_batch("a", metrics=[["loss", 1.0, 0, 1]]),
        log_batch("b", metrics=[["loss", 9.0, 0, 1]]),
        log_batch("a", metrics=[["loss", 0.5, 0, 2]], tags=[["status", "running"]]),
        {"op": "set_terminated", "run_id": "a", "status": "FINISHED"},
        log_batch("a", tags=[["status", "completed"]]),
        log_batch("b", metrics=[["loss", 8.0, 0, 2]]),
    ]
    calls = merge_log_batches(queued)
    merged = [operation for operation, _ in calls]
    assert [covered for _, covered in calls] == [
        [queued[0], queued[2]],
        [queued[1], queued[5]],
        [queued[3]],
        [queued[4]],
    ]
    assert [(operation["op"], operation["run_id"]) for operation in merged] == [
        ("log_batch", "a"),
        ("log_batch", "b"),
        ("set_terminated", "a"),
        ("log_batch", "a"),
    ]
    assert merged[0]["metrics"] == [["loss", 1.0, 0, 1], ["loss", 0.5, 0, 2]]
    assert merged[1]["metrics"] == [["loss", 9.0, 0, 1], ["loss", 8.0, 0, 2]]
    # Nothing written to run a after it finished was folded into a write before it.
    assert merged[3]["tags"] == [["status", "completed"]]


def test_merged_calls_stay_within_mlflows_limits_and_a_tag_twice_keeps_its_later_value():
    metrics = [[f"m{index}", 0.0, 0, 1] for index in range(2500)]
    params = [[f"p{index}", "1"] for index in range(150)]
    queued = [
        log_batch("a", metrics=metrics, params=params, tags=[["status", "running"]]),
        log_batch("a", tags=[["status", "done"]]),
    ]
    merged = [operation for operation, _ in merge_log_batches(queued)]
    for operation in merged:
        assert (
            len(operation["metrics"]) + len(operation["params"]) + len(operation["tags"])
            <= MAX_ITEMS_PER_BATCH
        )
        assert len(operation["params"]) <= MAX_PARAMS_PER_BATCH
    assert sum(len(operation["metrics"]) for operation in merged) == 2500
    assert sum(len(operation["params"]) for operation in merged) == 150
    assert len(merged) == 4  # 2650 items in calls of at most 1000
    # Tags go out in the order written, so the store ends with the later value.
    assert [tag for operation in merged for tag in operation["tags"]] == [
        ["status", "running"],
        ["status", "done"],
    ]
