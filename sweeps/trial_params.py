"""The hyperparameters a trial understands: their types, allowed values and defaults.

This table is what `params:` in a sweep file may name; the README's list is
generated from the same entries, and the trainer fills unnamed ones with the
defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.activations import ACTIVATIONS
from models.initializers import INITIALIZERS


@dataclass(frozen=True)
class TrialParam:
    kind: str  # "float" | "int" | "bool" | "name"
    default: Any
    help: str
    check: Callable[[Any], str | None] = lambda value: None
    names: tuple[str, ...] = ()


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be > 0, got {value}"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


def _fraction_below_one(value: float) -> str | None:
    return None if 0 <= value < 1 else f"must be in [0, 1), got {value}"


TRIAL_PARAMS: dict[str, TrialParam] = {
    "lr": TrialParam("float", 1e-2, "learning rate", _positive),
    "weight_decay": TrialParam(
        "float", 0.0, "L2 regularization strength (the optimizer's weight_decay)", _non_negative
    ),
    "momentum": TrialParam(
        "float", 0.9, "SGD momentum (train.optimizer: sgd)", _fraction_below_one
    ),
    "batch_size": TrialParam("int", 64, "examples per optimizer step", _positive),
    "activation": TrialParam(
        "name", "relu", "hidden-layer nonlinearity", names=tuple(sorted(ACTIVATIONS))
    ),
    "init": TrialParam("name", "he", "weight initializer", names=tuple(sorted(INITIALIZERS))),
    "batch_norm": TrialParam(
        "bool", False, "BatchNorm after each linear layer, before the activation"
    ),
    "bias_init": TrialParam(
        "float", 0.0, "constant for every hidden bias (e.g. 0.01 for ReLU units)"
    ),
    "trainable_layers": TrialParam(
        "int",
        0,
        "top backbone blocks fine-tuned besides the new head (model.arch: pretrained; 0 = "
        "linear probe)",
        _non_negative,
    ),
}

# Trial params that only one architecture takes, passed to its constructor.
ARCHITECTURE_PARAMS: dict[str, tuple[str, ...]] = {"pretrained": ("trainable_layers",)}


def check_param_value(name: str, value: Any) -> str | None:
    """Why `value` is not valid for trial parameter `name`, or None when it is."""
    param = TRIAL_PARAMS[name]
    if param.kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if param.kind == "name":
        if value in param.names:
            return None
        return f"unknown {name} {value!r}; choose from {list(param.names)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    if param.kind == "int" and not isinstance(value, int):
        return f"must be an integer, got {value!r}"
    if isinstance(value, float) and not math.isfinite(
        value
    ):  # ints are finite, and may not fit a float
        return f"must be finite, got {value!r}"
    return param.check(value)


def resolve_trial_params(sampled: dict[str, Any]) -> dict[str, Any]:
    """A trial's full hyperparameters: the sampled ones over the defaults."""
    return {name: param.default for name, param in TRIAL_PARAMS.items()} | sampled


def format_params(config: dict[str, Any]) -> str:
    """Params on one line, floats to 3 significant digits: `lr=0.0123 activation=relu`."""
    return " ".join(f"{key}={_short(value)}" for key, value in config.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
