"""Packing a sweep's trials into fused groups: which trials can train as one batched model, and how many together.

The trials are the ones the seed samples without fusion (distributions.preview_trial_configs
replays Ray's draws), only packed. Trials of a sweep share its architecture and options,
optimizer and precision; two can train as one model when they also share the batch size
(one batch per step for all) and maxout-or-not (maxout doubles the layers' widths).
Activation, batch norm, initializer, learning rate, weight decay, momentum and bias init
may differ. Each group lists its members by (activation, batch_norm), so each distinct
choice is one contiguous run of members: one kernel per choice, not per member.

`train.fuse: auto` groups ceil(num_samples / max_concurrent) trials, at most
AUTO_MAX_MEMBERS: about one group per concurrent slot, so the slots stay busy while each
trains many members at once. Below 2 trials per slot it does not fuse: running those
trials side by side uses the slots as well. On the CPU it fuses MLPs only: a fused conv
net's grouped convolutions and wider batch norms ran slower there than the same trials
one by one on CIFAR-sized images (resnet-small 0.7x, a CNN 1.0x; bench/RESULTS.md).
`train.fuse: N` makes groups of up to N whatever the device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sweeps.driver.config import SweepConfig
from sweeps.driver.distributions import preview_trial_configs
from sweeps.trial_params import resolve_trial_params

# The architectures sweeps.trial.fused.model can fuse (a test holds the two lists equal;
# the driver does not import the trial side's torch modules).
FUSABLE_ARCHITECTURES = ("cnn", "mlp", "resnet")
AUTO_ON_CPU = ("mlp",)  # what `auto` fuses when trials get no GPU
AUTO_MAX_MEMBERS = 32

Member = tuple[int, dict[str, Any]]  # (the trial's index in sampling order, its sampled params)


@dataclass(frozen=True)
class FusionPlan:
    groups: list[list[Member]]  # each group one Ray Tune trial; its members in training order
    members_per_group: int  # the most a group holds

    @property
    def num_trials(self) -> int:
        return sum(len(group) for group in self.groups)

    def describe(self, setting: Any) -> str:
        sizes = [len(group) for group in self.groups]
        listed = ", ".join(map(str, sizes[:-1])) + f" and {sizes[-1]}" if len(sizes) > 1 else str(sizes[0])
        return (
            f"fused (train.fuse: {setting}): {self.num_trials} trials in {len(sizes)} group{'s' * (len(sizes) > 1)} "
            f"of {listed}, each group trained as one batched model"
        )


def plan_fusion(config: SweepConfig) -> tuple[FusionPlan | None, str]:
    """The sweep's groups (None: trials train one by one) and a line saying why, for `validate` and `run`."""
    setting = config.train.fuse
    if setting == "off":
        return None, "not fused (train.fuse: off): each trial trains on its own"
    if config.model.arch not in FUSABLE_ARCHITECTURES:
        return None, f"not fused: model.arch {config.model.arch} cannot be fused (fusable: {', '.join(FUSABLE_ARCHITECTURES)}); each trial trains on its own"
    if setting == "auto" and config.model.arch not in AUTO_ON_CPU and not gets_a_gpu(config):
        return None, f"not fused (train.fuse: auto): {config.model.arch} trials on the CPU train faster one by one; train.fuse: N fuses them anyway"
    size = members_per_group(setting, num_samples=config.search.num_samples, max_concurrent=config.search.max_concurrent)
    if size < 2:
        why = "groups of 1" if setting != "auto" else f"{config.search.num_samples} trials at {config.search.max_concurrent} at a time are under 2 a slot"
        return None, f"not fused (train.fuse: {setting}: {why}): each trial trains on its own"
    trials = preview_trial_configs(config.params, seed=config.search.seed, num_samples=config.search.num_samples)
    plan = FusionPlan(groups=pack(list(enumerate(trials)), size), members_per_group=size)
    return plan, plan.describe(setting)


def gets_a_gpu(config: SweepConfig) -> bool:
    """Whether the sweep's trials ask for a GPU (`auto` counts: the sweep means to use one where there is)."""
    return config.train.device != "cpu" and config.resources.gpus_per_trial != 0


def members_per_group(setting: Any, *, num_samples: int, max_concurrent: int) -> int:
    if setting == "auto":
        return min(AUTO_MAX_MEMBERS, math.ceil(num_samples / max_concurrent))
    return int(setting)


def compatibility(sampled: dict[str, Any]) -> tuple[Any, ...]:
    """Trials with equal keys can share a group."""
    params = resolve_trial_params(sampled)
    return params["batch_size"], params["activation"] == "maxout", params["trainable_layers"]


def training_order(member: Member) -> tuple[Any, ...]:
    params = resolve_trial_params(member[1])
    return params["activation"], params["batch_norm"], member[0]


def pack(trials: list[Member], size: int) -> list[list[Member]]:
    """Groups of at most `size` compatible trials, as even as each class of compatible trials allows,
    the largest first (they take longest, so they start first)."""
    classes: dict[tuple[Any, ...], list[Member]] = {}
    for member in trials:
        classes.setdefault(compatibility(member[1]), []).append(member)
    groups = []
    for members in classes.values():
        members = sorted(members, key=training_order)
        count = math.ceil(len(members) / size)
        small, extra = divmod(len(members), count)
        start = 0
        for number in range(count):
            stop = start + small + (number < extra)
            groups.append(members[start:stop])
            start = stop
    return sorted(groups, key=lambda group: (-len(group), min(index for index, _ in group)))


def param_space(plan: FusionPlan) -> dict[str, Any]:
    """Ray Tune's param space for a fused sweep: one trial per group, named by its number (the
    trainable gets the groups themselves), in the order of plan.groups."""
    from ray import tune

    return {"group": tune.grid_search(list(range(len(plan.groups))))}
