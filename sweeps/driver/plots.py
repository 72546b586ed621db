"""Figures a person reads at a glance (matplotlib, no display needed)."""
from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # sweeps run on servers and in CI: never ask for a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


def close(figure: plt.Figure) -> None:
    """Free a figure's memory once it is saved (pyplot keeps every open figure)."""
    plt.close(figure)


STOPPED_EARLY = ("early_stopped", "stopped_on_alert")


def metric_vs_learning_rate(report: Any) -> plt.Figure | None:
    """The lecture's random-search plot: the metric against the learning rate on a log axis,
    one colour per activation, early-stopped trials hollow."""
    rows = [row for row in report.trials if row.best is not None and isinstance(row.params.get("lr"), (int, float))]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    activations = sorted({str(row.params.get("activation", "-")) for row in rows})
    colours = dict(zip(activations, plt.get_cmap("tab10").colors))
    for activation in activations:
        for stopped in (False, True):
            group = [row for row in rows if str(row.params.get("activation", "-")) == activation and (row.status in STOPPED_EARLY) == stopped]
            if group:
                axis.scatter(
                    [row.params["lr"] for row in group],
                    [row.best for row in group],
                    s=45,
                    facecolors="none" if stopped else colours[activation],
                    edgecolors=colours[activation],
                    label=f"{activation}{' (stopped early)' if stopped else ''}",
                )
    axis.set_xscale("log")
    axis.set_xlabel("learning rate (log scale)")
    axis.set_ylabel(f"best {report.metric}")
    axis.set_title(f"{report.name}: {report.metric} against learning rate ({len(rows)} trials)")
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    return figure


def metric_by_choice(report: Any) -> plt.Figure | None:
    """Strip plots of the metric for each value of the categorical params (activation, init, batch norm...)."""
    rows = [row for row in report.trials if row.best is not None]
    names = [name for name in ("activation", "init", "batch_norm") if len({_text(row.params.get(name)) for row in rows}) > 1]
    if not rows or not names:
        return None
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4.2), squeeze=False, sharey=True)
    jitter = np.random.default_rng(0)
    for axis, name in zip(axes[0], names):
        values = sorted({_text(row.params.get(name)) for row in rows})
        for position, value in enumerate(values):
            group = [row.best for row in rows if _text(row.params.get(name)) == value]
            axis.scatter(position + jitter.uniform(-0.15, 0.15, len(group)), group, s=30, alpha=0.8)
            axis.hlines(np.median(group), position - 0.3, position + 0.3, colors="black", linewidth=2)
        axis.set_xticks(range(len(values)), values, rotation=30, fontsize=8)
        axis.set_xlabel(name)
        axis.set_title(f"{report.metric} by {name}", fontsize=10)
        axis.grid(True, axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"best {report.metric} (bar: median)")
    figure.tight_layout()
    return figure


def learning_curves(report: Any, *, k: int) -> plt.Figure | None:
    top = report.top(k)
    if not top:
        return None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for rank, row in enumerate(top, 1):
        axis.plot([epoch for epoch, _ in row.history], [value for _, value in row.history], marker="o", markersize=3, label=f"#{rank} {_label(row)}")
    axis.set_xlabel("epoch")
    axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axis.set_ylabel(report.metric)
    axis.set_title(f"{report.name}: learning curves of the top {len(top)}")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def update_ratios(report: Any, *, k: int) -> plt.Figure | None:
    """Median update/weight ratio over training for the top K and the worst trial, with the 1e-3 target."""
    ranked = [row for row in report.trials if row.best is not None and row.update_ratio]
    if not ranked:
        return None
    shown = ranked[:k] + ([ranked[-1]] if len(ranked) > k else [])
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in shown:
        worst = row is ranked[-1] and len(ranked) > 1
        axis.plot(
            [step for step, _ in row.update_ratio],
            [max(value, 1e-12) for _, value in row.update_ratio],
            linestyle="--" if worst else "-",
            # A trial ASHA stopped after its first epoch has one measurement: a line alone would not show it.
            marker="o",
            markersize=3,
            label=f"{'worst' if worst else '#' + str(ranked.index(row) + 1)} {_label(row)}",
        )
    axis.axhline(1e-3, color="black", linewidth=1.5, linestyle=":", label="target 1e-3")
    axis.set_yscale("log")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("median update / weight ratio (log scale)")
    axis.set_title(f"{report.name}: update/weight ratio")
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def _label(row: Any) -> str:
    lr = row.params.get("lr")
    parts = [f"lr={lr:.2g}" if isinstance(lr, (int, float)) else None, row.params.get("activation"), row.params.get("init")]
    return " ".join(str(part) for part in parts if part is not None)


def _text(value: Any) -> str:
    """A param as the sweep file spells it (true/false, not True/False)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
