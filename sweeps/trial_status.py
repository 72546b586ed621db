"""How a finished trial ended, in the words the MLflow tag `sweep.status` and the progress use."""
from __future__ import annotations

from typing import Any

STATUSES = ("completed", "early_stopped", "failed")


def trial_status(last_result: dict[str, Any] | None, *, epochs: int, errored: bool) -> str:
    """`completed` trained every epoch, `early_stopped` was cut by the scheduler, `failed` raised."""
    if errored:
        return "failed"
    epochs_done = (last_result or {}).get("training_iteration", 0)
    return "completed" if epochs_done >= epochs else "early_stopped"
