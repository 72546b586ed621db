"""Frozen features for a sweep's pretrained backbone: computed once per distinct frozen prefix,
before the first trial, by Ray tasks on the cluster, and shared through Ray's object store.

Every node's trials read them from the object store (Ray moves them between nodes), so it
works on a cluster as on one machine. The trials the sweep will sample are known before it
starts (the same seeded draws Tune makes), so only the prefixes they use are computed. The
driver never imports torch: the work is in sweeps/trial/frozen_features.py, run by Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweeps.driver.sweep_file.distributions import preview_trial_configs
from sweeps.driver.sweep_file.schema import SweepConfig
from sweeps.errors import SweepError
from sweeps.trial.data import SplitData
from sweeps.trial_params import resolve_trial_params
from sweeps.trial_settings import TrialSettings

if TYPE_CHECKING:
    from ray import ObjectRef


@dataclass(frozen=True)
class SweepFeatures:
    """What trials get: trainable_layers -> the object store's reference to its frozen features
    (values whose prefix is not cached are absent)."""

    refs: dict[int, Any] = field(default_factory=dict)

    def note(self) -> str | None:
        """One line for the progress panel, or None when nothing is cached."""
        if not self.refs:
            return None
        return (
            "frozen features cached for trainable_layers "
            f"{', '.join(map(str, sorted(self.refs)))}: those trials train only what follows them"
        )


def sampled_trainable_layers(config: SweepConfig) -> list[int]:
    """The distinct trainable_layers of the trials the sweep will sample (Tune's own seeded
    draws)."""
    trials = preview_trial_configs(
        config.params, seed=config.search.seed, num_samples=config.search.num_samples
    )
    return sorted({resolve_trial_params(trial)["trainable_layers"] for trial in trials})


def why_not_cached(config: SweepConfig) -> str | None:
    """Why this sweep caches no frozen features at all (None: it caches what it can)."""
    if config.model.arch != "pretrained":
        return "model.arch is not pretrained"
    if not config.model.cache_features:
        return "model.cache_features is false"
    if config.model.weights is None:
        return (
            "model.weights is null: each trial's frozen backbone is a random initialization "
            "of its own"
        )
    if config.data.augment != "none":
        return (
            f"data.augment: {config.data.augment} changes every batch's images, so every "
            "batch runs the whole backbone"
        )
    return None


def describe_frozen_features(
    config: SweepConfig, settings: TrialSettings, data: SplitData
) -> list[str]:
    """What `sweep run` would cache, decided here without Ray (what `sweep check` prints)."""
    reason = why_not_cached(config)
    if reason is not None:
        return (
            [f"frozen features: not cached: {reason}"] if config.model.arch == "pretrained" else []
        )
    from sweeps.trial.frozen_features import decide_all

    return [
        f"frozen features: {decision.line()}"
        for decision in decide_all(settings, data, sampled_trainable_layers(config))
    ]


def cache_frozen_features(
    config: SweepConfig, settings: TrialSettings, data: SplitData, *, echo: Callable[[str], None]
) -> SweepFeatures:
    """Compute, on the cluster, the frozen features every distinct cached prefix of the sweep needs;
    wait for them."""
    reason = why_not_cached(config)
    if reason is not None:
        if config.model.arch == "pretrained":
            echo(f"frozen features: not cached: {reason}")
        return SweepFeatures()
    import ray

    from sweeps.driver.planning.gpu_share import gpus_for_one_task
    from sweeps.trial.frozen_features import decide_all, sized_frozen_features

    started = time.monotonic()
    resources = {
        "num_cpus": config.resources.cpus_per_trial,
        "num_gpus": gpus_for_one_task(config.resources.gpus_per_trial),
    }
    data_ref = ray.put(data)  # one copy for every task, freed when they are done
    decisions = _get(
        ray.remote(decide_all)
        .options(**resources)
        .remote(settings, data_ref, sampled_trainable_layers(config))
    )
    # Any: Ray's types do not know that num_returns=2 makes .remote() return two references.
    compute: Any = ray.remote(sized_frozen_features).options(**resources, num_returns=2)
    # frozen prefix -> the object store's references to its features' size and the features
    sizes: dict[int, ObjectRef] = {}
    features: dict[int, ObjectRef] = {}
    for decision in decisions:
        if decision.cached and decision.frozen_prefix not in features:
            refs: tuple[ObjectRef, ObjectRef] = compute.remote(
                settings, data_ref, decision.trainable_layers
            )
            sizes[decision.frozen_prefix], features[decision.frozen_prefix] = refs
    # Only the sizes come to the driver: the features stay in the object store, where trials read
    # them.
    megabytes = sum(_get(list(sizes.values()))) / 2**20
    lines = [f"frozen features: {decision.line()}" for decision in decisions]
    if features:
        seconds = time.monotonic() - started
        lines.append(
            f"frozen features: {len(features)} set(s), {megabytes:.1f} MB, computed once in "
            f"{seconds:.1f} s and shared by the trials that use them"
        )
    for line in lines:
        echo(line)
    return SweepFeatures(
        {
            decision.trainable_layers: features[decision.frozen_prefix]
            for decision in decisions
            if decision.cached
        }
    )


def _get(refs: Any) -> Any:
    """ray.get, a failed task's error as a SweepError (a weights file that is missing, a download
    refused)."""
    import ray

    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as error:
        raise SweepError(f"computing frozen features failed: {error.cause}") from None
