"""Packing a sweep's trials into fused groups: the trials the seed samples, compatible ones together, one kernel per choice."""
from __future__ import annotations

import pytest

from sweeps.driver.config import validate_sweep
from sweeps.driver.distributions import preview_trial_configs
from sweeps.driver.fusion import AUTO_MAX_MEMBERS, members_per_group, pack, param_space, plan_fusion
from sweeps.driver.sweep_file import load_sweep
from tests.conftest import REPO


def sweep(**sections):
    params = sections.pop("params", {
        "lr": {"log_uniform": [1.0e-4, 1.0]},
        "activation": {"choice": ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout"]},
        "batch_norm": {"choice": [True, False]},
        "batch_size": {"choice": [32, 64]},
    })
    return validate_sweep({"name": "fusion", "params": params, **sections}, source="test")


def test_the_groups_hold_exactly_the_trials_the_seed_samples():
    config = load_sweep(str(REPO / "search.yaml"))
    plan, note = plan_fusion(config)
    sampled = preview_trial_configs(config.params, seed=config.search.seed, num_samples=config.search.num_samples)
    members = sorted((index, trial) for group in plan.groups for index, trial in group)
    assert members == list(enumerate(sampled))  # every trial once, unchanged, only packed
    assert note.startswith(f"fused (train.fuse: auto): {len(sampled)} trials in {len(plan.groups)} groups")


def test_only_compatible_trials_share_a_group_and_each_choice_is_one_run():
    config = sweep(search={"num_samples": 40, "max_concurrent": 2, "seed": 1})
    plan, _ = plan_fusion(config)
    for group in plan.groups:
        assert len({trial.get("batch_size") for _, trial in group}) == 1
        assert len({trial["activation"] == "maxout" for _, trial in group}) == 1  # maxout doubles the widths
        choices = [(trial["activation"], trial["batch_norm"]) for _, trial in group]
        assert choices == sorted(choices)  # each (activation, batch_norm) a contiguous run of members
    mixed = [group for group in plan.groups if len({trial["activation"] for _, trial in group}) > 1]
    assert mixed and any(len({trial["batch_norm"] for _, trial in group}) > 1 for group in mixed)  # they may differ


def test_auto_makes_about_one_group_per_concurrent_slot():
    assert members_per_group("auto", num_samples=16, max_concurrent=2) == 8
    assert members_per_group("auto", num_samples=5, max_concurrent=2) == 3
    assert members_per_group("auto", num_samples=1000, max_concurrent=1) == AUTO_MAX_MEMBERS
    assert members_per_group(5, num_samples=16, max_concurrent=2) == 5


def test_a_class_of_compatible_trials_splits_evenly_and_the_largest_group_goes_first():
    trials = [(index, {"activation": "relu", "lr": 0.1 * index}) for index in range(13)] + [(13 + index, {"activation": "maxout"}) for index in range(3)]
    groups = pack(trials, 8)
    assert [len(group) for group in groups] == [7, 6, 3]
    assert sorted(index for group in groups for index, _ in group) == list(range(16))


@pytest.mark.parametrize(
    ("sections", "why"),
    [
        ({"train": {"fuse": "off"}}, "not fused (train.fuse: off)"),
        ({"train": {"fuse": 1}}, "not fused (train.fuse: 1: groups of 1)"),
        ({"search": {"num_samples": 2, "max_concurrent": 2}}, "not fused (train.fuse: auto: 2 trials at 2 at a time are under 2 a slot)"),
        ({"model": {"arch": "pretrained"}, "params": {"lr": 0.1}}, "not fused: model.arch pretrained cannot be fused"),
        ({"model": {"arch": "resnet"}}, "not fused (train.fuse: auto): resnet trials on the CPU train faster one by one"),
    ],
)
def test_when_trials_are_not_fused_the_note_says_why(sections, why):
    plan, note = plan_fusion(sweep(**sections))
    assert plan is None and note.startswith(why)


def test_auto_fuses_conv_nets_when_their_trials_get_a_gpu_and_n_fuses_them_anyway():
    for sections in ({"resources": {"gpus_per_trial": 0.5}}, {"resources": {"gpus_per_trial": "auto"}}, {"train": {"fuse": 4}}):
        plan, _ = plan_fusion(sweep(model={"arch": "cnn"}, **sections))
        assert plan is not None, sections


def test_a_fixed_group_size_and_tunes_param_space():
    plan, note = plan_fusion(sweep(train={"fuse": 3}, search={"num_samples": 10, "seed": 2}))
    assert max(len(group) for group in plan.groups) <= 3 and plan.num_trials == 10
    assert "(train.fuse: 3): 10 trials in" in note
    space = param_space(plan)
    assert space["group"]["grid_search"] == list(range(len(plan.groups)))  # one Tune trial per group


@pytest.mark.parametrize(("value", "parsed"), [("auto", "auto"), ("off", "off"), (False, "off"), (4, 4)])
def test_train_fuse_reads_off_auto_or_a_count(value, parsed):
    assert sweep(train={"fuse": value}).train.fuse == parsed  # YAML 1.1 reads a bare `off` as false
