"""The sanity checks' own numbers, as `sweep lecture` draws them."""

from __future__ import annotations

import math

from sweeps.trial.sanity import OVERFIT_MAX_STEPS, check_overfit_tiny_subset
from sweeps.trial_params import resolve_trial_params
from tests.conftest import digits, trial_settings


def test_the_overfit_check_keeps_its_loss_step_by_step():
    params = resolve_trial_params({"activation": "relu", "init": "small_random"})
    result = check_overfit_tiny_subset(
        params, trial_settings({"model": {"hidden": [64]}}), digits()
    )
    steps = int(result.measured.split(" after ")[1].split()[0])
    assert result.passed and len(result.curve) == steps <= OVERFIT_MAX_STEPS
    assert abs(result.curve[0] - math.log(10)) < 0.01  # small weights: every class starts at 1/10
    assert result.curve[-1] < 0.5 * result.curve[0]
