"""What every trial of a sweep shares: the fixed settings the driver hands each trial.

Plain values, no torch: the driver builds them without importing PyTorch, and they
travel to the trials with the trainable. No defaults here: the sweep file's schema
holds each default once, and sweeps/driver/planning/plan.py builds these from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DiagnosticsSettings:
    enabled: bool
    every_n_steps: int
    activations_every_n_steps: int
    low: float
    high: float
    patience: int
    warmup_steps: int  # no update-ratio alert before this many steps, nor in the first epoch
    stop_on: str | None  # too_high | too_low | any
    # Epochs after which a trial may end (the last, and ASHA's rungs): the only ones
    # whose activation histograms can be the "end of training" picture.
    histogram_epochs: frozenset[int]


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares: the fixed, non-sampled settings."""

    arch: str
    model_options: dict[str, Any]
    epochs: int
    optimizer: str
    threads: int
    seed: int
    checkpoint_every: int
    checkpoint_min_interval_s: float
    device: str  # auto | cpu | cuda
    precision: str  # fp32 | bf16 (autocast)
    diagnostics: DiagnosticsSettings
    augment: str  # none | flip | crop_flip, per training batch on the device
