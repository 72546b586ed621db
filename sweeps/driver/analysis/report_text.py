"""A sweep report as text: the ranked table, trials per value, trials at chance, importance; and as
JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import asdict
from typing import Any

from sweeps.driver.analysis.importance import format_importance
from sweeps.driver.analysis.report import SweepReport, TrialRow, sampled_param_names
from sweeps.driver.analysis.rungs import CHANCE_MARGIN

CATEGORICAL = (str, bool)


def format_table(report: SweepReport, k: int, *, with_importance: bool = True) -> str:
    """The top `k` trials by their best epoch, with their value and rank at the comparison rung;
    then
    how many trials each value had, the trials that sat at chance, and (`with_importance`) the
    importance."""
    rows = report.top(k)
    names = sampled_param_names(report)
    at = f"@{report.rung}" if report.rung is not None else "@-"
    header = ["rank", report.metric, at, f"rank{at}", "status", "epochs", *names, "alerts"]
    lines = [header] + [
        [
            str(rank),
            f"{row.best:.4f}",
            _number(row.at_rung),
            str(row.rank_at_rung or "-"),
            row.status,
            str(row.epochs),
            *(_short(row.params.get(name)) for name in names),
            _first_alert(row.alerts),
        ]
        for rank, row in enumerate(rows, 1)
    ]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    table = "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
    parts = [
        table,
        _legend(report),
        *(text for text in (_per_value(report), _at_chance(report)) if text),
    ]
    if with_importance:
        parts.append(
            format_importance(
                report.importance,
                metric=report.metric,
                epoch=report.rung,
                trials=len(report.at_rung()),
            )
        )
    return "\n\n".join(parts)


def _legend(report: SweepReport) -> str:
    with_result = sum(row.best is not None for row in report.trials)
    if report.rung is None:
        return f"ranked by each trial's best {report.metric} ({with_result} trials with a result)"
    return (
        f"ranked by each trial's best {report.metric}; @{report.rung}: its {report.metric} at "
        f"epoch {report.rung}, where the trials "
        "are compared fairly (the latest epoch ASHA compared at that most trials reached: "
        f"{len(report.at_rung())} of {with_result})"
    )


def per_value_counts(report: SweepReport) -> dict[str, list[tuple[str, int, float | None]]]:
    """For each categorical param that varied: (value, trials, median metric at the rung) per
    value."""
    found: dict[str, list[tuple[str, int, float | None]]] = {}
    for name in sampled_param_names(report):
        values = sorted(
            {
                _short(row.params.get(name))
                for row in report.trials
                if isinstance(row.params.get(name), CATEGORICAL)
            }
        )
        if len(values) < 2:
            continue
        found[name] = []
        for value in values:
            group = [row for row in report.trials if _short(row.params.get(name)) == value]
            at_rung = [row.at_rung for row in group if row.at_rung is not None]
            found[name].append((value, len(group), statistics.median(at_rung) if at_rung else None))
    return found


def _per_value(report: SweepReport) -> str:
    counts = per_value_counts(report)
    if not counts:
        return ""
    where = (
        f"median {report.metric} at epoch {report.rung}"
        if report.rung is not None
        else "no common epoch"
    )
    width = max(map(len, counts))
    lines = [f"trials per value ({where}):"]
    for name, values in counts.items():
        cells = " | ".join(
            f"{value} {count} ({_number(median)})" for value, count, median in values
        )
        lines.append(f"  {name.ljust(width)}  {cells}")
    return "\n".join(lines)


def _at_chance(report: SweepReport) -> str:
    flagged = [row for row in report.trials if row.at_chance]
    if not flagged:
        return ""
    lines = [
        f"at chance level in most of their epochs ({report.metric} under {CHANCE_MARGIN:g}x "
        "chance), learning nothing:"
    ]
    lines += [f"  {row.name}: {row.epochs} epochs, {row.status}" for row in flagged]
    return "\n".join(lines)


def format_json(report: SweepReport, k: int) -> str:
    return json.dumps(
        {
            "sweep_run_id": report.parent_run_id,
            "name": report.name,
            "metric": report.metric,
            "rung": report.rung,
            "trials": [_plain(row) for row in report.top(k)],
            "trials_per_value": {
                name: [{"value": v, "trials": n, "median_at_rung": m} for v, n, m in values]
                for name, values in per_value_counts(report).items()
            },
            "at_chance": [row.run_id for row in report.trials if row.at_chance],
            "importance": [item.as_dict() for item in report.importance],
        },
        indent=2,
    )


def format_csv(report: SweepReport, k: int) -> str:
    """Two tables, separated by an empty line: the top `k` trials, then the hyperparameter
    importance."""
    rows = report.top(k)
    names = sorted({name for row in rows for name in row.params})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    at = (
        f"{report.metric}_at_epoch_{report.rung}"
        if report.rung is not None
        else f"{report.metric}_at_rung"
    )
    writer.writerow(
        [
            "rank",
            "run_id",
            "name",
            report.metric,
            at,
            "rank_at_rung",
            "status",
            "epochs",
            "at_chance",
            *names,
            "alerts",
        ]
    )
    for rank, row in enumerate(rows, 1):
        fields = [
            row.run_id,
            row.name,
            row.best,
            row.at_rung,
            row.rank_at_rung,
            row.status,
            row.epochs,
            row.at_chance,
        ]
        writer.writerow([rank, *fields, *(row.params.get(name) for name in names), row.alerts])
    buffer.write("\n")
    writer.writerow(["importance_rank", "param", "importance", "std", "share", "matters"])
    for rank, item in enumerate(report.importance, 1):
        writer.writerow([rank, item.param, item.mean, item.std, item.share, item.matters])
    return buffer.getvalue().rstrip("\n")


FORMATS = {"table": format_table, "json": format_json, "csv": format_csv}


def _first_alert(alerts: str) -> str:
    if not alerts:
        return "-"
    first, *more = alerts.split("; ")
    return f"{first} (+{len(more)})" if more else first


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _short(value: Any) -> str:
    return (
        f"{value:.3g}"
        if isinstance(value, float)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def _plain(row: TrialRow) -> dict[str, Any]:
    plain = asdict(row)
    plain.pop("history")
    plain.pop("update_ratio")
    return plain
