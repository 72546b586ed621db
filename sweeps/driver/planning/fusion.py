"""Packing a sweep's trials into fused groups: which trials can train as one batched model, and how
many together.

The trials are the ones the seed samples without fusion (distributions.preview_trial_configs
replays Ray's draws), only packed. Trials of a sweep share its architecture and options,
optimizer and precision; two can train as one model when they also share the batch size
(one batch per step for all) and maxout-or-not (maxout doubles the layers' widths).
Activation, batch norm, initializer, learning rate, weight decay, momentum and bias init
may differ. Each group lists its members by (activation, batch_norm), so each distinct
choice is one contiguous run of members: one kernel per choice, not per member.

`train.fuse: auto` packs each class of compatible trials into as many groups as make the
sweep end soonest on its search.max_concurrent slots, by a cost model measured on the
digits MLP on one CPU core: a group of M members trains in (PER_MEMBER x M + PER_GROUP)
solo trials' time (MAXOUT_WIDTHS times that for maxout), so fewer, larger groups cost
less, while one group too many or too few leaves a slot idle at the end. Groups hold at
most AUTO_MAX_MEMBERS. With fewer than 2 trials a slot it does not fuse: running those
trials side by side uses the slots as well. On the CPU it fuses MLPs only: a fused conv
net's grouped convolutions and wider batch norms ran slower there than the same trials
one by one on CIFAR-sized images (resnet-small 0.7x, a CNN 1.0x; bench/RESULTS.md).
`train.fuse: N` makes groups of up to N whatever the device, as even as each class allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sweeps.driver.sweep_file.distributions import preview_trial_configs
from sweeps.driver.sweep_file.schema import SweepConfig
from sweeps.trial_params import resolve_trial_params

# The architectures sweeps.trial.fused.model can fuse (a test holds the two lists equal;
# the driver does not import the trial side's torch modules).
FUSABLE_ARCHITECTURES = ("cnn", "mlp", "resnet")
AUTO_ON_CPU = ("mlp",)  # what `auto` fuses when trials get no GPU
AUTO_MAX_MEMBERS = 32
# A group's training time, in solo trials' time: PER_MEMBER x members + PER_GROUP, times
# MAXOUT_WIDTHS for maxout. Fitted to groups of the default sweep's trials (mixed activations
# and batch norm, diagnostics on) training on one CPU core: 0.85, 0.71, 0.68, 0.55 and 0.59 of
# a solo trial's time per member at 4, 8, 16, 24 and 32 members; a maxout group cost 1.57x a
# plain one of as many members (bench/RESULTS.md).
PER_MEMBER, PER_GROUP, MAXOUT_WIDTHS = 0.55, 1.2, 1.5

Member = tuple[int, dict[str, Any]]  # (the trial's index in sampling order, its sampled params)


@dataclass(frozen=True)
class FusionPlan:
    groups: list[
        list[Member]
    ]  # each group one Ray Tune trial, costliest first; its members in training order

    @property
    def num_trials(self) -> int:
        return sum(len(group) for group in self.groups)

    def describe(self, setting: Any) -> str:
        sizes = [len(group) for group in self.groups]
        listed = (
            ", ".join(map(str, sizes[:-1])) + f" and {sizes[-1]}"
            if len(sizes) > 1
            else str(sizes[0])
        )
        return (
            f"fused (train.fuse: {setting}): {self.num_trials} trials in {len(sizes)} "
            f"group{'s' * (len(sizes) > 1)} "
            f"of {listed}, each group trained as one batched model"
        )


def plan_fusion(config: SweepConfig) -> tuple[FusionPlan | None, str]:
    """The sweep's groups (None: trials train one by one) and a line saying why, for `validate` and
    `run`."""
    setting = config.train.fuse
    if setting == "off":
        return None, "not fused (train.fuse: off): each trial trains on its own"
    if config.model.arch not in FUSABLE_ARCHITECTURES:
        return (
            None,
            f"not fused: model.arch {config.model.arch} cannot be fused (fusable: "
            f"{', '.join(FUSABLE_ARCHITECTURES)}); each trial trains on its own",
        )
    if setting == "auto" and config.model.arch not in AUTO_ON_CPU and not gets_a_gpu(config):
        return (
            None,
            f"not fused (train.fuse: auto): {config.model.arch} trials on the CPU train faster "
            "one by one; train.fuse: N fuses them anyway",
        )
    slots = config.search.max_concurrent
    if setting == "auto" and config.search.num_samples < 2 * slots:
        return (
            None,
            f"not fused (train.fuse: auto): {config.search.num_samples} trials at {slots} at a "
            "time are under 2 a slot; each trial trains on its own",
        )
    group_size = None if setting == "auto" else int(setting)  # None: the fastest counts
    if group_size is not None and group_size < 2:
        return None, f"not fused (train.fuse: {setting}): groups of 1; each trial trains on its own"
    trials = list(
        enumerate(
            preview_trial_configs(
                config.params, seed=config.search.seed, num_samples=config.search.num_samples
            )
        )
    )
    classes = compatible_classes(trials)
    counts = (
        fastest_group_counts(classes, slots)
        if group_size is None
        else [math.ceil(len(members) / group_size) for members in classes]
    )
    groups = [
        group
        for members, count in zip(classes, counts, strict=True)
        for group in split(members, count)
    ]
    plan = FusionPlan(
        groups=sorted(groups, key=lambda group: (-cost(group), min(index for index, _ in group)))
    )
    return plan, plan.describe(setting)


def gets_a_gpu(config: SweepConfig) -> bool:
    """Whether the sweep's trials ask for a GPU (`auto` counts: the sweep means to use one where
    there is)."""
    return config.train.device != "cpu" and config.resources.gpus_per_trial != 0


def compatibility(sampled: dict[str, Any]) -> tuple[Any, ...]:
    """Trials with equal keys can share a group."""
    params = resolve_trial_params(sampled)
    return params["batch_size"], params["activation"] == "maxout"


def training_order(member: Member) -> tuple[Any, ...]:
    params = resolve_trial_params(member[1])
    return params["activation"], params["batch_norm"], member[0]


def compatible_classes(trials: list[Member]) -> list[list[Member]]:
    """The trials by compatibility, each class in training order (so a group of it has each choice
    as one run)."""
    classes: dict[tuple[Any, ...], list[Member]] = {}
    for member in trials:
        classes.setdefault(compatibility(member[1]), []).append(member)
    return [sorted(members, key=training_order) for members in classes.values()]


def split(members: list[Member], count: int) -> list[list[Member]]:
    """`members` in `count` contiguous groups whose sizes differ by at most one."""
    small, extra = divmod(len(members), count)
    bounds = [0]
    for number in range(count):
        bounds.append(bounds[-1] + small + (number < extra))
    return [members[start:stop] for start, stop in zip(bounds, bounds[1:], strict=False)]


def cost(group: list[Member]) -> float:
    """A group's training time in solo trials' time (the module's cost model)."""
    # maxout doubles the layers' widths
    widths = MAXOUT_WIDTHS if compatibility(group[0][1])[1] else 1.0
    return widths * (PER_MEMBER * len(group) + PER_GROUP)


def makespan(costs: list[float], slots: int) -> float:
    """When the last slot is done, giving each group, largest first, to the slot free soonest (as
    Tune starts them)."""
    loads = [0.0] * slots
    for value in sorted(costs, reverse=True):
        loads[loads.index(min(loads))] += value
    return max(loads)


def fastest_group_counts(classes: list[list[Member]], slots: int) -> list[int]:
    """How many groups each class makes: from the fewest (AUTO_MAX_MEMBERS each) up, one more at a
    time for the class with the costliest group, keeping the counts that end soonest (fewer groups
    on a tie)."""
    counts = [math.ceil(len(members) / AUTO_MAX_MEMBERS) for members in classes]
    best: tuple[float, list[int]] | None = None
    while True:
        groups = [
            group
            for members, count in zip(classes, counts, strict=True)
            for group in split(members, count)
        ]
        span = makespan([cost(group) for group in groups], slots)
        if best is None or span < best[0] - 1e-9:
            best = (span, list(counts))
        costliest = max(
            range(len(classes)), key=lambda number: cost(split(classes[number], counts[number])[0])
        )
        if counts[costliest] == len(classes[costliest]):
            return best[1]
        counts[costliest] += 1


def param_space(plan: FusionPlan) -> dict[str, Any]:
    """Ray Tune's param space for a fused sweep: one trial per group, named by its number (the
    trainable gets the groups themselves), in the order of plan.groups."""
    from ray import tune

    return {"group": tune.grid_search(list(range(len(plan.groups))))}
