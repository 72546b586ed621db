"""What every trial of a sweep shares: the fixed settings the driver hands each trial.

Plain values, no torch: the driver builds them without importing PyTorch, and they
travel to the trials with the trainable.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DiagnosticsSettings:
    enabled: bool = True
    every_n_steps: int = 20
    activations_every_n_steps: int = 50
    low: float = 1e-4
    high: float = 1e-2
    patience: int = 3
    stop_on: str | None = None  # too_high | too_low | any
    # Epochs after which a trial may end (the last, and ASHA's rungs): the only ones
    # whose activation histograms can be the "end of training" picture.
    histogram_epochs: frozenset[int] = frozenset()


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a sweep shares: the fixed, non-sampled settings."""

    arch: str
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    optimizer: str = "sgd"
    threads: int = 1
    seed: int = 0
    checkpoint_every: int = 1
    checkpoint_min_interval_s: float = 0.0  # none here; a sweep passes train.checkpoint_min_interval_s (10 s)
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    diagnostics: DiagnosticsSettings = field(default_factory=DiagnosticsSettings)
