"""The Ray Tune trainable: a thin adapter from Tune's config to the plain training loop."""
from __future__ import annotations

from typing import Any

from ray import tune

from sweeps.data import SplitData
from sweeps.training import TrialSettings, run_training


def train_trial(config: dict[str, Any], *, data: SplitData, settings: TrialSettings) -> None:
    run_training(config, settings, data, report=tune.report)
