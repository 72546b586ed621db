"""Numbers the studies read off a finished sweep's MLflow record: per-trial activation
statistics over training, epochs to a target accuracy, medians that tolerate empty groups."""

from __future__ import annotations

import math
import statistics
from typing import Any

from sweeps.driver.analysis.report import TrialRow
from sweeps.driver.lecture.study import SweepResult


def layer_mean_history(result: SweepResult, row: TrialRow, stat: str) -> list[tuple[int, float]]:
    """(step, mean over the hidden layers of `stat`) for one trial, e.g. stat="act_dead_frac"."""
    run = next(run for run in result.runs if run.info.run_id == row.run_id)
    keys = sorted(key for key in run.data.metrics if key.startswith(f"{stat}/"))
    by_step: dict[int, list[float]] = {}
    for key in keys:
        for step, value in result.metric_history(row.run_id, key):
            if math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    return sorted(
        (step, sum(values) / len(values))
        for step, values in by_step.items()
        if len(values) == len(keys)
    )


def first_and_last(history: list[tuple[int, float]]) -> tuple[float, float]:
    """The value at initialization (step 0) and after the last probe; NaN where there is none."""
    if not history:
        return math.nan, math.nan
    return (history[0][1] if history[0][0] == 0 else math.nan), history[-1][1]


def epochs_to_reach(row: TrialRow, target: float) -> float:
    """The first epoch whose metric reached `target`; infinity if none did."""
    return next((float(epoch) for epoch, value in row.history if value >= target), math.inf)


def median(values: list[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return statistics.median(finite) if finite else math.nan


def finished(rows: list[TrialRow]) -> list[TrialRow]:
    """The trials that reported at least one epoch."""
    return [row for row in rows if row.best is not None]


def best_value(row: TrialRow) -> float:
    """The best metric of a trial that reported (one `finished` or `SweepReport.top` kept)."""
    assert row.best is not None, f"{row.name} reported no epoch"
    return row.best


def param(row: TrialRow, name: str, default: Any = None) -> Any:
    return row.params.get(name, default)


def text(value: float, digits: int = 3) -> str:
    """A number for the report: 'never' for infinity, '-' for NaN."""
    if math.isinf(value):
        return "never"
    if math.isnan(value):
        return "-"
    return f"{value:.{digits}g}"
