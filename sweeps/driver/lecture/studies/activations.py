"""Claim 2, activation functions: ReLU converges much faster than sigmoid and tanh, sigmoid
saturates, and ReLUs die with a large learning rate or a negative bias where leaky ReLUs do not."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sweeps.driver.analysis.report import TrialRow
from sweeps.driver.lecture.measures import (
    epochs_to_reach,
    finished,
    first_and_last,
    layer_mean_history,
    median,
    param,
    text,
)
from sweeps.driver.lecture.studies import dead_units
from sweeps.driver.lecture.study import Claim, Finding, Lecture, SweepResult, judge

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SWEEP_FILE = "activations.yaml"
TARGET = 0.9  # the val_acc whose epoch count is compared
FASTER = 2.0  # "much faster": at most half the epochs
SATURATED = 0.05  # sigmoid: at least this share of outputs saturated at the end of training
QUICK = {"search.num_samples": 12, "train.epochs": 8}

CLAIM = Claim(
    key="activations",
    title="2. Activation functions",
    statement=(
        "ReLU converges much faster than sigmoid and tanh; sigmoid units saturate, where their "
        "gradient "
        "vanishes; ReLUs die with a large learning rate or a negative bias, and leaky ReLUs do not."
    ),
    criterion=(
        "Convergence: with each activation at its best sampled learning rate, ReLU reaches "
        f"{TARGET:.0%} val_acc in at "
        f"most 1/{FASTER:g} the epochs of tanh and of sigmoid (a trial that never reaches it "
        "counts as infinitely slow). "
        "Saturation: at the end of training the median sigmoid trial has at least "
        f"{SATURATED:.0%} of its hidden outputs "
        "below 0.01 or above 0.99 (mean over layers), more than at initialization. Dead units: "
        f"{dead_units.CRITERION} "
        "All three must hold."
    ),
    sweep_files=(SWEEP_FILE, dead_units.SWEEP_FILE),
)


def run(lecture: Lecture) -> Finding:
    overrides = lecture.overrides(QUICK)
    result = lecture.run(SWEEP_FILE, overrides)
    speed = convergence(result)
    saturation = sigmoid_saturation(result)
    dead = dead_units.study(lecture)
    fastest = speed["relu"]
    converges = all(
        fastest * FASTER <= speed[other] for other in ("tanh", "sigmoid")
    ) and math.isfinite(fastest)
    saturates = saturation["end"] >= SATURATED and saturation["end"] > saturation["init"]
    decided, why = judge(
        {
            "ReLU much faster than tanh and sigmoid": converges,
            "sigmoid saturates": saturates,
            "ReLUs die, leaky ReLUs do not": dead.held,
        }
    )
    numbers = [
        (
            f"epochs to {TARGET:.0%} val_acc (best lr of each)",
            ", ".join(f"{name} {text(value)}" for name, value in speed.items()),
        ),
        (
            "trials (highest lr) per activation",
            ", ".join(
                f"{name} {len(rows)} ({max(param(row, 'lr') for row in rows):.2g})"
                for name, rows in by_activation(result).items()
                if rows
            ),
        ),
        (
            "sigmoid saturated fraction (median trial)",
            f"{saturation['init']:.3f} at initialization, {saturation['end']:.3f} at the end",
        ),
        *dead.numbers,
    ]
    return Finding(
        claim=CLAIM,
        verdict=decided,
        why=why,
        numbers=numbers,
        figures=[
            lecture.save(convergence_figure(result), "activations_convergence.png"),
            *dead.figures,
        ],
        commands=[lecture.command(SWEEP_FILE, overrides), dead.command],
        sweep_runs={result.config.name: result.report.parent_run_id, **dead.sweep_runs},
        metrics={
            f"epochs_to_target.{name}": value
            for name, value in speed.items()
            if math.isfinite(value)
        }
        | {"sigmoid_saturated.init": saturation["init"], "sigmoid_saturated.end": saturation["end"]}
        | dead.metrics,
    )


def by_activation(result: SweepResult) -> dict[str, list[TrialRow]]:
    """The trials that reported, by activation."""
    rows = finished(result.report.trials)
    return {
        activation: [row for row in rows if param(row, "activation") == activation]
        for activation in ("relu", "tanh", "sigmoid")
    }


def convergence(result: SweepResult) -> dict[str, float]:
    """For each activation, the fewest epochs any of its trials took to reach TARGET."""
    return {
        activation: min((epochs_to_reach(row, TARGET) for row in rows), default=math.inf)
        for activation, rows in by_activation(result).items()
    }


def sigmoid_saturation(result: SweepResult) -> dict[str, float]:
    """The saturated fraction of the median sigmoid trial at initialization and after training."""
    pairs = [
        first_and_last(layer_mean_history(result, row, "act_saturated_frac"))
        for row in by_activation(result)["sigmoid"]
    ]
    return {
        "init": median([first for first, _ in pairs]),
        "end": median([last for _, last in pairs]),
    }


def convergence_figure(result: SweepResult) -> Figure:
    """val_acc per epoch of every trial, a panel per activation, coloured by learning rate."""
    import matplotlib.colors

    from sweeps.driver.analysis.plots import plt

    rows = finished(result.report.trials)
    lrs = [param(row, "lr") for row in rows]
    norm = matplotlib.colors.LogNorm(min(lrs), max(lrs))
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True, layout="constrained")
    for axis, activation in zip(axes, ("relu", "tanh", "sigmoid"), strict=True):
        for row in rows:
            if param(row, "activation") == activation:
                axis.plot(
                    [epoch for epoch, _ in row.history],
                    [value for _, value in row.history],
                    color=plt.cm.viridis(norm(param(row, "lr"))),
                    alpha=0.85,
                )
        axis.axhline(TARGET, color="black", linestyle=":", linewidth=1)
        axis.set_title(activation)
        axis.set_xlabel("epoch")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("val_acc")
    figure.colorbar(
        plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes, label="learning rate"
    )
    figure.suptitle(
        f"{result.config.name}: learning curves by activation (dotted: {TARGET:.0%})", fontsize=10
    )
    return figure
