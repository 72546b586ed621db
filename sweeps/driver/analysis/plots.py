"""Figures a person reads at a glance (matplotlib, no display needed).

Every figure marks the trials that were stopped early (hollow markers, dashed
lines), compares trials at the sweep's common rung where it can, and sets its
axes from the bulk of the data, so a lone point (a trial stopped after one epoch)
sits at the edge with an arrow-like marker instead of stretching the axis.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sweeps.run_names import short_number

if TYPE_CHECKING:
    from sweeps.driver.analysis.report import SweepReport

matplotlib.use("Agg")  # sweeps run on servers and in CI: never ask for a display
import matplotlib.pyplot as plt  # noqa: E402 -- only once the backend is chosen

CATEGORICAL = (str, bool)


def write_plots(report: SweepReport, out_dir: Path, *, k: int) -> list[Path]:
    """The report's figures as PNG files in `out_dir`, and the importance as JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        f"{report.metric}_vs_lr.png": metric_vs_learning_rate(report),
        f"{report.metric}_by_choice.png": metric_by_choice(report),
        "learning_curves.png": learning_curves(report, k=k),
        "update_ratio.png": update_ratios(report, k=k),
        "importance.png": importance(report),
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
        close(figure)
        paths.append(path)
    return paths


def close(figure: Figure) -> None:
    """Free a figure's memory once it is saved (pyplot keeps every open figure)."""
    plt.close(figure)


def metric_vs_learning_rate(report: SweepReport) -> Figure | None:
    """The lecture's random-search plot: the metric against the learning rate on a log axis, one
    colour
    per activation, early-stopped trials hollow; at the common rung (fair) and at each trial's
    best."""
    rows = [
        row
        for row in report.trials
        if row.best is not None and isinstance(row.params.get("lr"), (int, float))
    ]
    if not rows:
        return None
    panels = [("best", f"best {report.metric} over its epochs")]
    if report.rung is not None:
        panels.insert(
            0,
            (
                "at_rung",
                f"{report.metric} at epoch {report.rung} (every trial compared after as many "
                "epochs)",
            ),
        )
    figure, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels) + 2, 4.6), squeeze=False, sharey=True
    )
    activations = sorted({_text(row.params.get("activation", "-")) for row in rows})
    colours = dict(zip(activations, matplotlib.color_sequences["tab10"], strict=False))
    for axis, (field, title) in zip(axes[0], panels, strict=True):
        shown = [row for row in rows if getattr(row, field) is not None]
        for activation in activations:
            for stopped in (False, True):
                group = [
                    row
                    for row in shown
                    if _text(row.params.get("activation", "-")) == activation
                    and row.stopped_early == stopped
                ]
                if group:
                    axis.scatter(
                        [row.params["lr"] for row in group],
                        [getattr(row, field) for row in group],
                        s=45,
                        facecolors="none" if stopped else colours[activation],
                        edgecolors=colours[activation],
                        label=f"{activation} ({len(group)}{', stopped early' if stopped else ''})",
                    )
        _mark_chance(axis, report)
        axis.set_xscale("log")
        axis.set_xlabel("learning rate (log scale)")
        axis.set_title(f"{title}\n{len(shown)} trials", fontsize=9)
        axis.grid(True, which="major", alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    axes[0][0].set_ylabel(report.metric)
    figure.suptitle(
        f"{report.name}: {report.metric} against learning rate (hollow: stopped early)", fontsize=11
    )
    figure.tight_layout()
    return figure


def metric_by_choice(report: SweepReport) -> Figure | None:
    """Strip plots of the metric at the common rung for each value of the categorical params, with
    the
    number of trials per value and their median; early-stopped trials hollow."""
    field = "at_rung" if report.rung is not None else "best"
    rows = [row for row in report.trials if getattr(row, field) is not None]
    names = [
        name
        for name in sorted(
            {
                name
                for row in rows
                for name, value in row.params.items()
                if isinstance(value, CATEGORICAL)
            }
        )
        if len({_text(row.params.get(name)) for row in rows}) > 1
    ]
    if not rows or not names:
        return None
    figure, axes = plt.subplots(
        1, len(names), figsize=(3.8 * len(names), 4.4), squeeze=False, sharey=True
    )
    jitter = np.random.default_rng(0)
    for axis, name in zip(axes[0], names, strict=True):
        values = sorted({_text(row.params.get(name)) for row in rows})
        for position, value in enumerate(values):
            group = [row for row in rows if _text(row.params.get(name)) == value]
            offsets = position + jitter.uniform(-0.15, 0.15, len(group))
            metric = [getattr(row, field) for row in group]
            colours = ["none" if row.stopped_early else "tab:blue" for row in group]
            axis.scatter(offsets, metric, s=32, facecolors=colours, edgecolors="tab:blue")
            axis.hlines(
                np.median(metric), position - 0.3, position + 0.3, colors="black", linewidth=2
            )
        labels = [
            f"{value}\nn={sum(_text(row.params.get(name)) == value for row in rows)}"
            for value in values
        ]
        axis.set_xticks(range(len(values)), labels, fontsize=8)
        axis.set_xlabel(name)
        axis.grid(True, axis="y", alpha=0.3)
        _mark_chance(axis, report)
    where = f"at epoch {report.rung}" if field == "at_rung" else "best over its epochs"
    axes[0][0].set_ylabel(f"{report.metric} {where} (bar: median)")
    figure.suptitle(
        f"{report.name}: {report.metric} {where} by value (n: trials; hollow: stopped early)",
        fontsize=11,
    )
    figure.tight_layout()
    return figure


def learning_curves(report: SweepReport, *, k: int) -> Figure | None:
    """The metric per epoch of the top K, stopped-early trials dashed, the comparison rung
    marked."""
    top = report.top(k)
    if not top:
        return None
    figure, axis = plt.subplots(figsize=(10, 4.6))
    for rank, row in enumerate(top, 1):
        epochs, values = [epoch for epoch, _ in row.history], [value for _, value in row.history]
        axis.plot(
            epochs,
            values,
            marker="o",
            markersize=3,
            linestyle="--" if row.stopped_early else "-",
            label=f"#{rank} {row.name}",
        )
    if report.rung is not None:
        axis.axvline(
            report.rung,
            color="grey",
            linestyle=":",
            linewidth=1,
            label=f"epoch {report.rung}: compared here",
        )
    _robust_ylim(axis, [row.history for row in top], unit="epoch")
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.set_ylabel(report.metric)
    axis.set_title(f"{report.name}: learning curves of the top {len(top)} (dashed: stopped early)")
    axis.grid(True, alpha=0.3)
    _legend_outside(axis)
    figure.tight_layout()
    return figure


def update_ratios(report: SweepReport, *, k: int) -> Figure | None:
    """Median update/weight ratio over training for the top K and the worst trial, with the 1e-3
    target."""
    ranked = [row for row in report.trials if row.best is not None and row.update_ratio]
    if not ranked:
        return None
    shown = ranked[:k] + ([ranked[-1]] if len(ranked) > k else [])
    figure, axis = plt.subplots(figsize=(10, 4.6))
    for row in shown:
        worst = row is ranked[-1] and len(ranked) > 1
        axis.plot(
            [step for step, _ in row.update_ratio],
            [max(value, 1e-12) for _, value in row.update_ratio],
            linestyle="--" if row.stopped_early else "-",
            # a trial ASHA stopped after its first epoch has one measurement: a line alone would not
            # show it
            marker="o",
            markersize=3,
            label=f"{'worst' if worst else '#' + str(ranked.index(row) + 1)} {row.name}",
        )
    axis.axhline(1e-3, color="black", linewidth=1.5, linestyle=":", label="target 1e-3")
    axis.set_yscale("log")
    _robust_ylim(
        axis,
        [[(step, max(value, 1e-12)) for step, value in row.update_ratio] for row in shown],
        unit="step",
        log=True,
        keep=(1e-3,),
    )
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("median update / weight ratio (log scale)")
    axis.set_title(f"{report.name}: update/weight ratio (dashed: stopped early)")
    axis.grid(True, which="major", alpha=0.3)
    _legend_outside(axis)
    figure.tight_layout()
    return figure


def importance(report: SweepReport) -> Figure | None:
    """Each sampled param's importance for the metric at the comparison rung, with its bootstrap
    spread."""
    found = report.importance
    if not found:
        return None
    figure, axis = plt.subplots(figsize=(8, 1.6 + 0.45 * len(found)))
    positions = np.arange(len(found))[::-1]
    colours = ["tab:green" if item.matters else "lightgrey" for item in found]
    axis.barh(
        positions,
        [item.mean for item in found],
        xerr=[item.std for item in found],
        color=colours,
        edgecolor="black",
        capsize=3,
    )
    axis.set_yticks(positions, [f"{item.param} ({item.share:.0%})" for item in found])
    axis.axvline(0, color="black", linewidth=0.8)
    axis.set_xlabel(
        f"drop in R² of a forest predicting {report.metric} when the param is shuffled\n(bars: "
        "± spread over bootstrap fits)"
    )
    trials = len(report.at_rung())
    axis.set_title(
        f"{report.name}: what explains {report.metric} at epoch {report.rung}\n({trials} "
        "trials; green: matters, grey: no clear effect)",
        fontsize=10,
    )
    axis.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def _robust_ylim(
    axis: Axes,
    series: list[list[tuple[int, float]]],
    *,
    unit: str,
    log: bool = False,
    keep: tuple[float, ...] = (),
) -> None:
    """Limits from the series of more than one (x, y) point (and `keep`); a lone point beyond them
    is drawn
    at the edge as a triangle with its value, so one trial stopped early does not squash every
    curve."""
    bulk = [y for points in series if len(points) > 1 for _, y in points] + list(keep)
    if len(bulk) < 2:
        return
    low, high = min(bulk), max(bulk)
    if log:
        low, high = low / 2, high * 2
    else:
        pad = 0.05 * (high - low or 1.0)
        low, high = low - pad, high + pad
    axis.set_ylim(low, high)
    for x, y in (points[0] for points in series if len(points) == 1):
        if not low <= y <= high:
            edge, marker = (low, "v") if y < low else (high, "^")
            axis.scatter([x], [edge], marker=marker, color="grey", clip_on=False, zorder=5)
            axis.annotate(
                f"{short_number(y)} (one {unit})",
                (x, edge),
                fontsize=7,
                xytext=(6, 4),
                textcoords="offset points",
                va="bottom",
            )


def _legend_outside(axis: Axes) -> None:
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _mark_chance(axis: Axes, report: SweepReport) -> None:
    """Chance level as a line, and how many trials sat there (trained on, learned nothing)."""
    if report.chance is None:
        return
    flagged = sum(row.at_chance for row in report.trials)
    note = (
        f"chance ({flagged} trial{'s' if flagged != 1 else ''} sat here most epochs)"
        if flagged
        else "chance"
    )
    axis.axhline(report.chance, color="firebrick", linestyle=":", linewidth=1)
    axis.annotate(
        note,
        (0.01, report.chance),
        xycoords=("axes fraction", "data"),
        fontsize=7,
        color="firebrick",
        xytext=(0, 3),
        textcoords="offset points",
    )


def _text(value: Any) -> str:
    """A param as the sweep file spells it (true/false, not True/False)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
