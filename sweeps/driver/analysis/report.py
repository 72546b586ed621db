"""A finished (or running) sweep read back from MLflow: its trials ranked at their last epoch and at
a common rung."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
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
        return sorted(
            (row for row in self.trials if row.at_rung is not None),
            key=lambda row: row.rank_at_rung,
        )

    def better(self, value: float) -> float:
        """A sort key: lower is better whatever the mode."""
        return -value if self.mode == "max" else value


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
    for row in report.trials:
        row.at_rung = rungs.value_at(row.history, report.rung)
    for rank, row in enumerate(
        sorted(
            (row for row in report.trials if row.at_rung is not None),
            key=lambda row: report.better(row.at_rung),
        ),
        1,
    ):
        row.rank_at_rung = rank
    if importance:
        report.importance = hyperparameter_importance(
            [(row.params, row.at_rung) for row in report.at_rung()], report.specs
        )


def sampled_param_names(report: SweepReport) -> list[str]:
    """The params that differ between trials: the ones worth a column."""
    names = sorted({name for row in report.trials for name in row.params})
    return [
        name for name in names if len({repr(row.params.get(name)) for row in report.trials}) > 1
    ]


def write_plots(report: SweepReport, out_dir: Path, *, k: int) -> list[Path]:
    """The report's figures as PNG files in `out_dir`, and the importance as JSON."""
    from sweeps.driver.analysis import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        f"{report.metric}_vs_lr.png": plots.metric_vs_learning_rate(report),
        f"{report.metric}_by_choice.png": plots.metric_by_choice(report),
        "learning_curves.png": plots.learning_curves(report, k=k),
        "update_ratio.png": plots.update_ratios(report, k=k),
        "importance.png": plots.importance(report),
    }
    paths = []
    if report.importance:
        paths.append(out_dir / "importance.json")
        paths[-1].write_text(
            json.dumps([item.as_dict() for item in report.importance], indent=2) + "\n"
        )
    for filename, figure in figures.items():
        if figure is None:
            continue
        path = out_dir / filename
        figure.savefig(path, dpi=110)
        plots.close(figure)
        paths.append(path)
    return paths
