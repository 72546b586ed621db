"""Claim 3, batch norm: with it a wider range of learning rates trains, and the initialization
matters less."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sweeps.driver.lecture.measures import best_value, finished, param
from sweeps.driver.lecture.study import Claim, Finding, Lecture, SweepResult, judge

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SWEEP_FILE = "batch_norm.yaml"
TRAINS = 0.9  # a learning rate "trains" when its trial reaches this val_acc
QUICK = {"search.num_samples": 20, "train.epochs": 5}

CLAIM = Claim(
    key="batch_norm",
    title="3. Batch normalization",
    statement="With batch norm, a wider range of learning rates trains, and the initialization "
    "matters less.",
    criterion=(
        "From one random sweep (learning rate log-uniform over 5 decades, initializer and "
        "batch norm sampled): "
        f"the share of trials that reach val_acc >= {TRAINS:g} is larger with batch norm than "
        "without (the learning "
        "rate has the same distribution in both, so that share is the trainable range's share "
        "of the 5 decades), and "
        "the gap between the best val_acc of the best and the worst initializer is smaller "
        "with batch norm than without."
    ),
    sweep_files=(SWEEP_FILE,),
)


def run(lecture: Lecture) -> Finding:
    overrides = lecture.overrides(QUICK)
    result = lecture.run(SWEEP_FILE, overrides)
    rows = finished(result.report.trials)
    low, high = result.config.params["lr"]["log_uniform"]
    decades = math.log10(high) - math.log10(low)
    share, gap, best = {}, {}, {}
    for norm in (True, False):
        group = [row for row in rows if param(row, "batch_norm") is norm]
        share[norm] = (
            sum(best_value(row) >= TRAINS for row in group) / len(group) if group else math.nan
        )
        best[norm] = {
            init: max(
                (best_value(row) for row in group if param(row, "init") == init), default=math.nan
            )
            for init in ("small_random", "xavier", "he")
        }
        found = [value for value in best[norm].values() if not math.isnan(value)]
        gap[norm] = max(found) - min(found) if found else math.nan
    wider, steadier = share[True] > share[False], gap[True] < gap[False]
    numbers = [
        (
            f"trials reaching val_acc {TRAINS:g}",
            f"with batch norm {share[True]:.0%} (about {share[True] * decades:.1f} decades of "
            f"lr), without {share[False]:.0%} (about {share[False] * decades:.1f})",
        ),
        *(
            (
                f"best val_acc by initializer, {'with' if norm else 'without'} batch norm",
                ", ".join(f"{init} {value:.3f}" for init, value in best[norm].items())
                + f" (gap {gap[norm]:.3f})",
            )
            for norm in (True, False)
        ),
    ]
    decided, why = judge(
        {"a wider range of learning rates trains": wider, "the initializer matters less": steadier}
    )
    return Finding(
        claim=CLAIM,
        verdict=decided,
        why=why,
        numbers=numbers,
        figures=[lecture.save(figure(result), "batch_norm.png")],
        commands=[lecture.command(SWEEP_FILE, overrides)],
        sweep_runs={result.config.name: result.report.parent_run_id},
        metrics={
            "share_trains.bn": share[True],
            "share_trains.no_bn": share[False],
            "init_gap.bn": gap[True],
            "init_gap.no_bn": gap[False],
        },
    )


def figure(result: SweepResult) -> Figure:
    """Best val_acc against the learning rate with and without batch norm, a marker per
    initializer."""
    from sweeps.driver.analysis.plots import plt

    rows = finished(result.report.trials)
    markers = {"small_random": "v", "xavier": "s", "he": "o"}
    plot, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True, sharex=True)
    for axis, norm in zip(axes, (False, True), strict=True):
        for init, marker in markers.items():
            group = [
                row
                for row in rows
                if param(row, "batch_norm") is norm and param(row, "init") == init
            ]
            axis.scatter(
                [param(row, "lr") for row in group],
                [row.best for row in group],
                marker=marker,
                s=40,
                label=init,
            )
        axis.axhline(TRAINS, color="black", linestyle=":", linewidth=1)
        axis.set_xscale("log")
        axis.set_xlabel("learning rate (log scale)")
        axis.set_title("with batch norm" if norm else "without batch norm")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("best val_acc")
    axes[1].legend(fontsize=8, title="init", title_fontsize=8)
    plot.suptitle(
        f"{result.config.name}: which learning rates train (dotted: val_acc {TRAINS:g})",
        fontsize=10,
    )
    plot.tight_layout()
    return plot
