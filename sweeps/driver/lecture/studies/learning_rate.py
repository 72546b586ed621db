"""Claim 5, the learning rate and the update/weight ratio: the best trials update their weights
by about 1e-3 of their size per step, and the alerts flag the trials whose rate is too low or too
high."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweeps.driver.analysis.report import TrialRow
from sweeps.driver.lecture.measures import finished, median, param
from sweeps.driver.lecture.study import Claim, Finding, Lecture, SweepResult, judge

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SWEEP_FILE = "learning_rate.yaml"
TOP = 3
NEAR = (1e-4, 1e-2)  # a factor of 10 either side of the rule of thumb's 1e-3: the alerts' band
QUICK = {
    "search.num_samples": 12
}  # every epoch: alerts wait out the warm-up (100 steps and the first epoch)

CLAIM = Claim(
    key="learning_rate",
    title="5. The learning rate and the update/weight ratio",
    statement=(
        "Across a log-uniform learning-rate sweep, the best trials update their weights by "
        "about 1e-3 of their "
        "size per step, and the trials whose learning rate is too low or too high are the ones "
        "the alerts flag."
    ),
    criterion=(
        f"The {TOP} best trials' median update/weight ratios all lie within [{NEAR[0]:g}, "
        f"{NEAR[1]:g}] (a factor of 10 "
        "around 1e-3) and none of them is flagged; at least one trial is flagged too_low and "
        "one too_high; every "
        "too_low alert is on a trial whose learning rate is below the best trial's, and every "
        "too_high (or nonfinite) "
        "alert on one whose learning rate is above it."
    ),
    sweep_files=(SWEEP_FILE,),
)


def alert_directions(row: TrialRow) -> set[str]:
    """The directions of a trial's alerts, from its `alert.update_ratio` tag ('too_high: ...;
    too_low: ...')."""
    return {alert.split(":", 1)[0].strip() for alert in row.alerts.split("; ") if alert.strip()}


def ratio(row: TrialRow) -> float:
    """The trial's median update/weight ratio over training."""
    return median([value for _, value in row.update_ratio])


def run(lecture: Lecture) -> Finding:
    overrides = lecture.overrides(QUICK)
    result = lecture.run(SWEEP_FILE, overrides)
    rows = finished(result.report.trials)
    best_lr = param(rows[0], "lr")
    top = rows[:TOP]
    low = [row for row in rows if "too_low" in alert_directions(row)]
    high = [row for row in rows if alert_directions(row) & {"too_high", "nonfinite"}]
    checks = {
        "the top trials near 1e-3": all(NEAR[0] <= ratio(row) <= NEAR[1] for row in top),
        "the top trials unflagged": not any(alert_directions(row) for row in top),
        "trials flagged in both directions": bool(low) and bool(high),
        "each flag on its side of the best lr": all(param(row, "lr") < best_lr for row in low)
        and all(param(row, "lr") > best_lr for row in high),
    }
    numbers = [
        (
            f"top {TOP}: lr, median update/weight ratio",
            "; ".join(f"{param(row, 'lr'):.2g}, {ratio(row):.2g}" for row in top),
        ),
        ("flagged too_low (lr)", ", ".join(f"{param(row, 'lr'):.2g}" for row in low) or "none"),
        (
            "flagged too_high or nonfinite (lr)",
            ", ".join(f"{param(row, 'lr'):.2g}" for row in high) or "none",
        ),
        (
            "unflagged (lr)",
            ", ".join(f"{param(row, 'lr'):.2g}" for row in rows if not alert_directions(row))
            or "none",
        ),
    ]
    decided, why = judge(checks)
    return Finding(
        claim=CLAIM,
        verdict=decided,
        why=why,
        numbers=numbers,
        figures=[
            lecture.save(figure(result), "learning_rate.png"),
            lecture.save(ratio_curves(result), "learning_rate_update_ratio.png"),
        ],
        commands=[
            lecture.command(SWEEP_FILE, overrides),
            f"sweep report {result.config.name}   # update_ratio.png",
        ],
        sweep_runs={result.config.name: result.report.parent_run_id},
        metrics={f"top{rank}.update_ratio": ratio(row) for rank, row in enumerate(top, 1)}
        | {"flagged.too_low": len(low), "flagged.too_high": len(high)},
    )


COLOURS = {"": "tab:green", "too_low": "tab:blue", "too_high": "tab:red", "nonfinite": "black"}


def _colour(row: TrialRow) -> str:
    directions = alert_directions(row)
    return next(
        (COLOURS[name] for name in ("nonfinite", "too_high", "too_low") if name in directions),
        COLOURS[""],
    )


def figure(result: SweepResult) -> Figure:
    """Best val_acc against the learning rate, and against the median update/weight ratio, coloured
    by alert."""
    from sweeps.driver.analysis.plots import plt

    rows = finished(result.report.trials)
    plot, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colours = [_colour(row) for row in rows]
    axes[0].scatter([param(row, "lr") for row in rows], [row.best for row in rows], c=colours, s=40)
    axes[0].set_xlabel("learning rate (log scale)")
    axes[1].scatter(
        [max(ratio(row), 1e-12) for row in rows], [row.best for row in rows], c=colours, s=40
    )
    axes[1].axvspan(*NEAR, color="tab:green", alpha=0.08)
    axes[1].axvline(1e-3, color="black", linestyle=":", linewidth=1)
    axes[1].set_xlabel(
        "median update/weight ratio (log scale)\ndotted: 1e-3; shaded: the band outside which "
        "the alerts fire"
    )
    for axis in axes:
        axis.set_xscale("log")
        axis.grid(True, alpha=0.3)
    for name, colour in COLOURS.items():
        axes[0].scatter([], [], c=colour, label=name or "no alert")
    axes[0].legend(fontsize=8)
    axes[0].set_ylabel("best val_acc")
    plot.suptitle(
        f"{result.config.name}: the best trials sit near a ratio of 1e-3; the alerts flag the "
        "others",
        fontsize=10,
    )
    plot.tight_layout()
    return plot


def ratio_curves(result: SweepResult) -> Figure:
    """`sweep report`'s own update_ratio.png for this sweep: the top trials and the worst over
    training."""
    from sweeps.driver.analysis import plots

    figure = plots.update_ratios(result.report, k=TOP)
    assert figure is not None, "the sweep's trials log their update ratios"
    return figure
