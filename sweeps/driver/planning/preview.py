"""What `sweep validate` shows of a valid sweep file: the file resolved, what is sampled, how the
trials fuse, and the first trials it draws."""

from __future__ import annotations

from sweeps.driver.planning.fusion import plan_fusion
from sweeps.driver.sweep_file.distributions import preview_trial_configs, sampled_names
from sweeps.driver.sweep_file.reading import dump_sweep
from sweeps.driver.sweep_file.schema import SweepConfig
from sweeps.trial_params import format_params

PREVIEWED_TRIALS = 3


def describe_sweep(config: SweepConfig) -> list[str]:
    """The lines `sweep validate` prints after saying the file is valid."""
    sampled = ", ".join(sampled_names(config.params)) or "nothing (every param is fixed)"
    search = config.search
    lines = [dump_sweep(config).rstrip(), f"\nsampled at random: {sampled}", plan_fusion(config)[1]]
    lines.append(f"trials: {search.num_samples} (seed {search.seed}), first ones:")
    first = preview_trial_configs(
        config.params, seed=search.seed, num_samples=min(PREVIEWED_TRIALS, search.num_samples)
    )
    lines += [f"  {index:>3}: {format_params(trial)}" for index, trial in enumerate(first)]
    return lines
