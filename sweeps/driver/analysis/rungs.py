"""Trials compared fairly under early stopping: at a rung they all reached, and which of them sat at
chance level.

ASHA stops most trials after their first epochs, so a trial's best value over its
own epochs compares a 1-epoch trial with a 20-epoch one. At a rung (an epoch where
ASHA compares trials), every trial that reached it has trained as long as the others.
"""

from __future__ import annotations

import ast
import math
from typing import Any

from sweeps.driver.planning.plan import asha_rungs

# Enough trials to compare at a rung: at least this share of those with a result...
SHARE_AT_RUNG = 0.5
# ...and never fewer than this many (a ranking or an importance needs a few points).
MIN_TRIALS_AT_RUNG = 4
# A trial "sat at chance level" when its accuracy stayed below chance * CHANCE_MARGIN
# (0.15 for 10 classes) in more than half of its epochs, and it trained more than one
# (a trial stopped after its first epoch cost little and ASHA already judged it).
CHANCE_MARGIN = 1.5
# Data sets whose number of classes the report knows from the sweep's settings alone.
TEN_CLASS_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
STOPPED_EARLY = ("early_stopped", "stopped_on_alert", "diverged")


def setting(params: dict[str, str], key: str, default: Any = None) -> Any:
    """A parent-run param as the value it was (params are stored as text)."""
    text = params.get(key)
    if text is None:
        return default
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return {"true": True, "false": False, "None": None}.get(text, text)


def sweep_rungs(params: dict[str, str]) -> list[int]:
    """The epochs at which the sweep's trials were compared (ASHA's rungs) and the last one."""
    epochs = int(setting(params, "train.epochs", 1))
    if setting(params, "early_stopping.scheduler", "none") != "asha":
        return [epochs]
    return asha_rungs(
        epochs=epochs,
        grace_period=int(setting(params, "early_stopping.grace_period", 1)),
        reduction_factor=float(setting(params, "early_stopping.reduction_factor", 4)),
    )


def value_at(history: list[tuple[int, float]], epoch: int) -> float | None:
    """The metric a trial reported at `epoch` (what ASHA compared), None if it never got there."""
    for step, value in history:
        if step == epoch and math.isfinite(value):
            return value
    return None


def comparison_rung(histories: list[list[tuple[int, float]]], rungs: list[int]) -> int | None:
    """The latest rung that enough of the trials reached (see SHARE_AT_RUNG)."""
    with_results = [history for history in histories if history]
    if not with_results:
        return None
    needed = min(
        len(with_results), max(MIN_TRIALS_AT_RUNG, math.ceil(SHARE_AT_RUNG * len(with_results)))
    )
    reached = [
        rung
        for rung in rungs
        if sum(value_at(history, rung) is not None for history in with_results) >= needed
    ]
    return max(reached) if reached else None


def chance_level(params: dict[str, str]) -> float | None:
    """The accuracy of guessing, 1 / classes, where the sweep's settings say how many classes there
    are."""
    dataset = setting(params, "data.dataset")
    if dataset in TEN_CLASS_DATASETS:
        return 0.1
    if dataset == "synthetic":
        return 1.0 / int(setting(params, "data.synthetic.num_classes", 4))
    return None


def sat_at_chance(history: list[tuple[int, float]], chance: float | None) -> bool:
    """Accuracy below chance * CHANCE_MARGIN in most of the trial's epochs."""
    if chance is None or len(history) < 2:
        return False
    low = sum(value < chance * CHANCE_MARGIN for _, value in history)
    return low > len(history) / 2
