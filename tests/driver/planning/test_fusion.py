"""Packing a sweep's trials into fused groups: the trials the seed samples, compatible ones
together, one kernel per choice."""

from __future__ import annotations

import pytest

from sweeps.driver.planning.fusion import (
    AUTO_MAX_MEMBERS,
    compatible_classes,
    cost,
    fastest_group_counts,
    makespan,
    param_space,
    plan_fusion,
    split,
)
from sweeps.driver.sweep_file.distributions import preview_trial_configs
from sweeps.driver.sweep_file.reading import load_sweep
from sweeps.driver.sweep_file.validation import validate_sweep
from tests.conftest import REPO


def sweep(**sections):
    params = sections.pop(
        "params",
        {
            "lr": {"log_uniform": [1.0e-4, 1.0]},
            "activation": {"choice": ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout"]},
            "batch_norm": {"choice": [True, False]},
            "batch_size": {"choice": [32, 64]},
        },
    )
    return validate_sweep({"name": "fusion", "params": params, **sections}, source="test")


def test_the_groups_hold_exactly_the_trials_the_seed_samples():
    config = load_sweep(str(REPO / "search.yaml"))
    plan, note = plan_fusion(config)
    sampled = preview_trial_configs(
        config.params, seed=config.search.seed, num_samples=config.search.num_samples
    )
    members = sorted((index, trial) for group in plan.groups for index, trial in group)
    assert members == list(enumerate(sampled))  # every trial once, unchanged, only packed
    assert note.startswith(
        f"fused (train.fuse: auto): {len(sampled)} trials in {len(plan.groups)} groups"
    )


def test_only_compatible_trials_share_a_group_and_each_choice_is_one_run():
    config = sweep(search={"num_samples": 40, "max_concurrent": 2, "seed": 1})
    plan, _ = plan_fusion(config)
    for group in plan.groups:
        assert len({trial.get("batch_size") for _, trial in group}) == 1
        # maxout doubles the widths
        assert len({trial["activation"] == "maxout" for _, trial in group}) == 1
        choices = [(trial["activation"], trial["batch_norm"]) for _, trial in group]
        # each (activation, batch_norm) a contiguous run of members
        assert choices == sorted(choices)
    mixed = [group for group in plan.groups if len({trial["activation"] for _, trial in group}) > 1]
    # they may differ
    assert mixed and any(len({trial["batch_norm"] for _, trial in group}) > 1 for group in mixed)


def test_a_schedule_ends_when_its_busiest_slot_does():
    assert makespan([3.0, 2.0, 2.0, 1.0], 2) == 4.0  # 3 + 1 and 2 + 2
    assert makespan([3.0, 2.0, 2.0, 1.0], 1) == 8.0


def test_auto_packs_each_class_into_the_groups_that_end_soonest():
    relu = [(index, {"activation": "relu"}) for index in range(12)]
    maxout = [(12 + index, {"activation": "maxout"}) for index in range(4)]
    classes = compatible_classes(relu + maxout)
    # Two slots: 12 plain members and 4 maxout ones (twice the widths) cost about the same as one
    # group
    # each, and run side by side; 6 + 6 + 4 would leave a slot idle while the third group trains.
    assert fastest_group_counts(classes, 2) == [1, 1]
    assert makespan(
        [cost(group) for group in split(classes[0], 1) + split(classes[1], 1)], 2
    ) < makespan([cost(group) for group in split(classes[0], 2) + split(classes[1], 1)], 2)
    # Eight slots: a group for each, so that none waits.
    assert sum(fastest_group_counts(classes, 8)) == 8
    # One slot: the fewest groups, as large as allowed.
    many = [(index, {"activation": "relu"}) for index in range(70)]
    assert fastest_group_counts(compatible_classes(many), 1) == [3] and AUTO_MAX_MEMBERS * 3 >= 70


def test_a_class_splits_into_groups_that_differ_by_at_most_one():
    members = [(index, {}) for index in range(13)]
    assert [len(group) for group in split(members, 2)] == [7, 6]
    assert [index for group in split(members, 3) for index, _ in group] == list(range(13))


@pytest.mark.parametrize(
    ("sections", "why"),
    [
        ({"train": {"fuse": "off"}}, "not fused (train.fuse: off)"),
        ({"train": {"fuse": 1}}, "not fused (train.fuse: 1): groups of 1"),
        (
            {"search": {"num_samples": 3, "max_concurrent": 2}},
            "not fused (train.fuse: auto): 3 trials at 2 at a time are under 2 a slot",
        ),
        (
            {"model": {"arch": "pretrained"}, "params": {"lr": 0.1}},
            "not fused: model.arch pretrained cannot be fused",
        ),
        (
            {"model": {"arch": "resnet"}},
            "not fused (train.fuse: auto): resnet trials on the CPU train faster one by one",
        ),
    ],
)
def test_when_trials_are_not_fused_the_note_says_why(sections, why):
    plan, note = plan_fusion(sweep(**sections))
    assert plan is None and note.startswith(why)


def test_auto_fuses_conv_nets_when_their_trials_get_a_gpu_and_n_fuses_them_anyway():
    for sections in (
        {"resources": {"gpus_per_trial": 0.5}},
        {"resources": {"gpus_per_trial": "auto"}},
        {"train": {"fuse": 4}},
    ):
        plan, _ = plan_fusion(sweep(model={"arch": "cnn"}, **sections))
        assert plan is not None, sections


def test_a_fixed_group_size_and_tunes_param_space():
    plan, note = plan_fusion(sweep(train={"fuse": 3}, search={"num_samples": 10, "seed": 2}))
    assert max(len(group) for group in plan.groups) <= 3 and plan.num_trials == 10
    assert "(train.fuse: 3): 10 trials in" in note
    space = param_space(plan)
    # one Tune trial per group
    assert space["group"]["grid_search"] == list(range(len(plan.groups)))


@pytest.mark.parametrize(
    ("value", "parsed"), [("auto", "auto"), ("off", "off"), (False, "off"), (4, 4)]
)
def test_train_fuse_reads_off_auto_or_a_count(value, parsed):
    assert sweep(train={"fuse": value}).train.fuse == parsed  # YAML 1.1 reads a bare `off` as false
