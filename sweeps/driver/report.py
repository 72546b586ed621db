"""A finished (or running) sweep read back from MLflow: ranked trials, tables and plots."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

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


@dataclass
class SweepReport:
    parent_run_id: str
    name: str
    metric: str
    mode: str
    trials: list[TrialRow]  # best first; trials without a result last

    def top(self, k: int) -> list[TrialRow]:
        return [row for row in self.trials if row.best is not None][:k]


def load_report(reader: SweepReader, experiment_or_run: str) -> SweepReport:
    parent = reader.find_sweep_run(experiment_or_run)
    metric = parent.data.params.get("search.metric", "val_acc")
    mode = parent.data.params.get("search.mode", "max")
    rows = []
    for run in reader.trial_runs(parent):
        history = reader.metric_history(run.info.run_id, metric)
        values = [value for _, value in history if math.isfinite(value)]
        rows.append(
            TrialRow(
                run_id=run.info.run_id,
                name=run.info.run_name,
                status=run.data.tags.get("sweep.status", "running"),
                params={key: yaml.safe_load(value) for key, value in run.data.params.items()},
                best=(max(values) if mode == "max" else min(values)) if values else None,
                epochs=len(history),
                alerts=run.data.tags.get("alert.update_ratio", ""),
                history=history,
                update_ratio=reader.metric_history(run.info.run_id, "update_ratio/median"),
            )
        )
    sign = -1 if mode == "max" else 1
    rows.sort(key=lambda row: (row.best is None, sign * (row.best or 0.0)))
    return SweepReport(parent.info.run_id, parent.data.params.get("name", parent.info.run_name), metric, mode, rows)


def sampled_param_names(report: SweepReport) -> list[str]:
    """The params that differ between trials: the ones worth a column."""
    names = sorted({name for row in report.trials for name in row.params})
    return [name for name in names if len({repr(row.params.get(name)) for row in report.trials}) > 1]


def format_table(report: SweepReport, k: int) -> str:
    rows = report.top(k)
    names = sampled_param_names(report)
    header = ["rank", report.metric, "status", "epochs", *names, "alerts"]
    lines = [header] + [
        [str(rank), f"{row.best:.4f}", row.status, str(row.epochs), *(_short(row.params.get(name)) for name in names), _first_alert(row.alerts)]
        for rank, row in enumerate(rows, 1)
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def format_json(report: SweepReport, k: int) -> str:
    return json.dumps([_plain(row) for row in report.top(k)], indent=2)


def format_csv(report: SweepReport, k: int) -> str:
    rows = report.top(k)
    names = sorted({name for row in rows for name in row.params})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "run_id", report.metric, "status", "epochs", *names, "alerts"])
    for rank, row in enumerate(rows, 1):
        writer.writerow([rank, row.run_id, row.best, row.status, row.epochs, *(row.params.get(name) for name in names), row.alerts])
    return buffer.getvalue()


FORMATS = {"table": format_table, "json": format_json, "csv": format_csv}


def write_plots(report: SweepReport, out_dir: Path, *, k: int) -> list[Path]:
    """The report's figures as PNG files in `out_dir`."""
    from sweeps.driver import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        f"{report.metric}_vs_lr.png": plots.metric_vs_learning_rate(report),
        f"{report.metric}_by_choice.png": plots.metric_by_choice(report),
        "learning_curves.png": plots.learning_curves(report, k=k),
        "update_ratio.png": plots.update_ratios(report, k=k),
    }
    paths = []
    for filename, figure in figures.items():
        if figure is None:
            continue
        path = out_dir / filename
        figure.savefig(path, dpi=110)
        plots.close(figure)
        paths.append(path)
    return paths


def _first_alert(alerts: str) -> str:
    if not alerts:
        return "-"
    first, *more = alerts.split("; ")
    return f"{first} (+{len(more)})" if more else first


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


def _plain(row: TrialRow) -> dict[str, Any]:
    plain = asdict(row)
    plain.pop("history")
    plain.pop("update_ratio")
    return plain
