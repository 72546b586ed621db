"""A finished (or running) sweep read back from MLflow: its trials ranked at their last epoch and at
a common rung."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from sweeps.driver.analysis import rungs
from sweeps.driver.analysis.importance import Importance, hyperparameter_importance
from sweeps.driver.tracking.queries import SweepReader


@dataclass
class TrialRow:
    run_id: str
    name: str
    status: str
    params: dict[str, Any]
    best: float | None  # the best value of the sweep's metric over the trial's epochs
    epochs: int
    alerts: str = ""
    history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, metric)
    update_ratio: list[tuple[int, float]] = field(default_factory=list)  # (step, median ratio)
    # the metric at the sweep's comparison rung, if the trial got there
    at_rung: float | None = None
    rank_at_rung: int | None = None
    at_chance: bool = False  # accuracy at chance level in most of its epochs

    @property
    def stopped_early(self) -> bool:
        return self.status in rungs.STOPPED_EARLY


@dataclass
class SweepReport:
    parent_run_id: str
    name: str
    metric: str
    mode: str
    trials: list[TrialRow]  # best first; trials without a result last
    rung: int | None = None  # the epoch trials are compared at (see rungs.comparison_rung)
    rungs: list[int] = field(default_factory=list)
    specs: dict[str, Any] = field(default_factory=dict)  # sampled param -> its distribution
    importance: list[Importance] = field(default_factory=list)
    # the accuracy of guessing, where the report knows the number of classes
    chance: float | None = None

    def top(self, k: int) -> list[TrialRow]:
        return [row for row in self.trials if row.best is not None][:k]

    def at_rung(self) -> list[TrialRow]:
        """The trials that reached the comparison rung, best there first."""
        return sorted((row for row in self.trials if row.at_rung is not None), key=_rank_at_rung)

    def better(self, value: float) -> float:
        """A sort key: lower is better whatever the mode."""
        return -value if self.mode == "max" else value


def _rank_at_rung(row: TrialRow) -> int:
    assert row.rank_at_rung is not None, f"{row.name} has a value at the rung but no rank there"
    return row.rank_at_rung


def load_report(
    reader: SweepReader, experiment_or_run: str, *, importance: bool = True
) -> SweepReport:
    """The sweep's trials ranked, compared at a rung and (with `importance`, a few seconds) their
    params' importance."""
    parent = reader.find_sweep_run(experiment_or_run)
    settings = parent.data.params
    report = SweepReport(
        parent_run_id=parent.info.run_id,
        name=settings.get("name", parent.info.run_name),
        metric=settings.get("search.metric", "val_acc"),
        mode=settings.get("search.mode", "max"),
        trials=[],
        rungs=rungs.sweep_rungs(settings),
        specs={
            key.removeprefix("params."): spec
            for key in settings
            if key.startswith("params.") and isinstance(spec := rungs.setting(settings, key), dict)
        },
    )
    report.chance = rungs.chance_level(settings) if report.metric.endswith("_acc") else None
    report.trials = [_trial_row(reader, run, report) for run in reader.trial_runs(parent)]
    report.trials.sort(key=lambda row: (row.best is None, report.better(row.best or 0.0)))
    _compare_at_rung(report, importance=importance)
    return report


def _trial_row(reader: SweepReader, run: Any, report: SweepReport) -> TrialRow:
    history = reader.metric_history(run.info.run_id, report.metric)
    values = [value for _, value in history if math.isfinite(value)]
    return TrialRow(
        run_id=run.info.run_id,
        name=run.info.run_name,
        status=run.data.tags.get("sweep.status", "running"),
        params={key: yaml.safe_load(value) for key, value in run.data.params.items()},
        best=min(values, key=report.better) if values else None,
        epochs=len(history),
        alerts=run.data.tags.get("alert.update_ratio", ""),
        history=history,
        update_ratio=reader.metric_history(run.info.run_id, "update_ratio/median"),
        at_chance=rungs.sat_at_chance(history, report.chance),
    )


def _compare_at_rung(report: SweepReport, *, importance: bool) -> None:
    """Each trial's value and rank at the comparison rung, and the importance of each param
    there."""
    report.rung = rungs.comparison_rung([row.history for row in report.trials], report.rungs)
    if report.rung is None:
        return
    reached: list[tuple[TrialRow, float]] = []
    for row in report.trials:
        row.at_rung = rungs.value_at(row.history, report.rung)
        if row.at_rung is not None:
            reached.append((row, row.at_rung))
    ranked = sorted(reached, key=lambda pair: report.better(pair[1]))  # report.at_rung()'s order
    for rank, (row, _) in enumerate(ranked, 1):
        row.rank_at_rung = rank
    if importance:
        report.importance = hyperparameter_importance(
            [(row.params, value) for row, value in ranked], report.specs
        )


def sampled_param_names(report: SweepReport) -> list[str]:
    """The params that differ between trials: the ones worth a column."""
    names = sorted({name for row in report.trials for name in row.params})
    return [
        name for name in names if len({repr(row.params.get(name)) for row in report.trials}) > 1
    ]
