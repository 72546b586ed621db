"""`sweep check`: the lecture's sanity checks on a sweep's model and data, in this process, without
Ray."""

from __future__ import annotations

from collections.abc import Callable

from sweeps.driver.planning.feature_cache import describe_frozen_features
from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data
from sweeps.driver.sweep_file.distributions import representative_params
from sweeps.driver.sweep_file.schema import SweepConfig
from sweeps.trial.sanity import CheckResult, run_sanity_checks
from sweeps.trial_params import format_params


def check_sweep(config: SweepConfig, *, echo: Callable[[str], None]) -> list[CheckResult]:
    """Each check's result on the sweep's data and a representative trial: the middle of every
    range, the first of every choice. Says what it checks (and which features it caches) first."""
    data = load_sweep_data(config)
    params = representative_params(config.params)
    echo(f"checking {config.model.arch} on {config.data.dataset} with {format_params(params)}")
    settings = build_trial_settings(config)
    for line in describe_frozen_features(config, settings, data):
        echo(line)
    return run_sanity_checks(params, settings, data)
