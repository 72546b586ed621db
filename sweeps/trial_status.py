"""How a finished trial ended, in the words the MLflow tag `sweep.status` and the progress use."""

from __future__ import annotations

from typing import Any

STATUSES = ("completed", "early_stopped", "stopped_on_alert", "diverged", "failed")
SUCCEEDED = ("completed", "early_stopped")


def trial_status(last_result: dict[str, Any] | None, *, epochs: int, errored: bool) -> str:
    """`completed` trained every epoch, `early_stopped` was cut by the scheduler,
    `stopped_on_alert` was stopped by `diagnostics.stop_on`, `diverged` reached a
    NaN or infinite training loss, `failed` raised."""
    if errored:
        return "failed"
    if (last_result or {}).get("diverged"):
        return "diverged"
    if (last_result or {}).get("stop_reason"):
        return "stopped_on_alert"
    epochs_done = (last_result or {}).get("training_iteration", 0)
    return "completed" if epochs_done >= epochs else "early_stopped"
