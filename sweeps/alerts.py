"""An alert in one line, as the terminal, MLflow tags and reports show it (both sides use it)."""

from __future__ import annotations

from typing import Any


def alert_summary(alert: dict[str, Any]) -> str:
    """One line for an alert, e.g. `too_high: layers.0.weight 3.1e-02 at step 120`.

    Takes the plain-dict form that travels in reports (where NaN may be spelled as a string)."""
    value = alert["value"]
    shown = value if isinstance(value, str) else format(value, ".1e")
    return f"{alert['direction']}: {alert['parameter']} {shown} at step {alert['step']}"
