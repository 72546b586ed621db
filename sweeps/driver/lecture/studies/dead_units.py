"""Part of claim 2: dead ReLUs appear with a large learning rate or a negative bias; leaky ReLUs do
not die."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sweeps.driver.analysis.report import TrialRow
from sweeps.driver.lecture.measures import (
    finished,
    first_and_last,
    layer_mean_history,
    median,
    param,
)
from sweeps.driver.lecture.study import Lecture, SweepResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SWEEP_FILE = "dead_relu.yaml"
LARGE_LR = 0.1
DEAD = 0.05  # the median "bad" ReLU trial ends with at least this share of dead units...
MORE_THAN = 2.0  # ...and at least twice the median "good" one's
QUICK = {"search.num_samples": 12, "train.epochs": 6}

CRITERION = (
    f"the ReLU trials with a large learning rate (>= {LARGE_LR:g}) or the negative bias end "
    "training with a median "
    f"dead-unit fraction (mean over layers) of at least {DEAD:.0%} and at least {MORE_THAN:g}x "
    "the median of the ReLU "
    "trials with neither, and no leaky-ReLU trial ends with a dead unit."
)


@dataclass
class DeadUnits:
    held: bool
    numbers: list[tuple[str, str]]
    figures: list[str]
    command: str
    sweep_runs: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)


def study(lecture: Lecture) -> DeadUnits:
    overrides = lecture.overrides(QUICK)
    result = lecture.run(SWEEP_FILE, overrides)
    trials = dead_fractions(result)
    bad = median(
        [end for activation, is_harsh, _, end in trials if activation == "relu" and is_harsh]
    )
    good = median(
        [end for activation, is_harsh, _, end in trials if activation == "relu" and not is_harsh]
    )
    leaky = max(
        (end for activation, _, _, end in trials if activation == "leaky_relu"), default=0.0
    )
    held = bad >= DEAD and bad >= MORE_THAN * good and leaky == 0
    count = Counter((activation, is_harsh) for activation, is_harsh, *_ in trials)
    numbers = [
        (
            "dead-unit fraction at the end (median trial)",
            f"ReLU with large lr or negative bias {bad:.3f} ({count.get(('relu', True), 0)} "
            "trials), "
            f"ReLU with neither {good:.3f} ({count.get(('relu', False), 0)} trials), leaky ReLU "
            f"at most {leaky:.3f}",
        )
    ]
    return DeadUnits(
        held=held,
        numbers=numbers,
        figures=[lecture.save(dead_figure(result, trials), "activations_dead_units.png")],
        command=lecture.command(SWEEP_FILE, overrides),
        sweep_runs={result.config.name: result.report.parent_run_id},
        metrics={
            "dead_frac.relu_harsh": bad,
            "dead_frac.relu_mild": good,
            "dead_frac.leaky_max": leaky,
        },
    )


def harsh(row: TrialRow) -> bool:
    """A large learning rate or a negative starting bias: what the lecture says kills ReLUs."""
    return param(row, "lr") >= LARGE_LR or param(row, "bias_init", 0.0) < 0


def dead_fractions(result: SweepResult) -> list[tuple[str, bool, list[tuple[int, float]], float]]:
    """(activation, harsh, dead fraction over training, at the end) per trial that reported."""
    trials = []
    for row in finished(result.report.trials):
        history = layer_mean_history(result, row, "act_dead_frac")
        trials.append((param(row, "activation"), harsh(row), history, first_and_last(history)[1]))
    return trials


def dead_figure(
    result: SweepResult, trials: list[tuple[str, bool, list[tuple[int, float]], float]]
) -> Figure:
    """The dead fraction over training: ReLU and leaky ReLU side by side, harsh settings in red."""
    from sweeps.driver.analysis.plots import plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for axis, activation in zip(axes, ("relu", "leaky_relu"), strict=True):
        for name, is_harsh, history, _ in trials:
            if name == activation and history:
                axis.plot(
                    [step for step, _ in history],
                    [value for _, value in history],
                    color="tab:red" if is_harsh else "tab:blue",
                    alpha=0.7,
                )
        axis.set_title(f"{activation}")
        axis.set_xlabel("optimizer step")
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("dead units (mean over layers)")
    axes[0].plot([], [], color="tab:red", label=f"lr >= {LARGE_LR:g} or bias -1")
    axes[0].plot([], [], color="tab:blue", label="neither")
    axes[0].legend(fontsize=8)
    figure.suptitle(
        f"{result.config.name}: dead units over training (output 0 for the whole probe batch)",
        fontsize=10,
    )
    figure.tight_layout()
    return figure
