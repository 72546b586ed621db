"""A trial's name as a person scans it in a table: `t03 relu he bn lr=3.5e-2`.

The trial's number in the sweep, then the values of the params that vary, words
first (activation, initializer, batch norm), numbers after. Tune's own trial id
(`train_trial_5f1c2_00003`) tells trials apart but nothing about them; it stays on
the run as the tag `sweep.trial_id`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

# Short names for the params a run name shows as `name=value` or as a flag.
ABBREVIATIONS = {
    "batch_norm": "bn",
    "weight_decay": "wd",
    "momentum": "mom",
    "batch_size": "bs",
    "bias_init": "bias",
    "trainable_layers": "tl",
}


def trial_number(trial_id: str) -> int | None:
    """The trial's place in the sweep (0, 1, ...): Tune's ids end in `_00003`."""
    _, _, suffix = trial_id.rpartition("_")
    return int(suffix) if suffix.isdigit() else None


def trial_run_name(trial_id: str, config: dict[str, Any], sampled: Iterable[str]) -> str:
    """`t03 relu he bn lr=3.5e-2`: the trial's number and the values of its sampled params."""
    number = trial_number(trial_id)
    words, flags, numbers = [], [], []
    for name in sampled:
        if name not in config:
            continue
        value = config[name]
        short = ABBREVIATIONS.get(name, name)
        if isinstance(value, bool):
            flags.append(short if value else f"no-{short}")
        elif isinstance(value, (int, float)):
            numbers.append(f"{short}={short_number(value)}")
        else:
            words.append(str(value))
    head = f"t{number:02d}" if number is not None else trial_id
    return " ".join([head, *words, *flags, *numbers])


def short_number(value: float) -> str:
    """Small values as exponents of 2 digits without padding (0.035 -> 3.5e-2), others to 3 digits
    (0.9, 250)."""
    if isinstance(value, int) or not math.isfinite(
        value
    ):  # a diverged trial's ratio may be inf or nan
        return str(value)
    if value != 0 and not 0.1 <= abs(value) < 1e3:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.3g}"
