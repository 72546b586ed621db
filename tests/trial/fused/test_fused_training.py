"""A fused member trains as its trial trains alone: the same curves, diagnostics, ends and
checkpoints.

Tolerances. A batched matmul or a grouped convolution adds in another order than the solo
layer, so in float32 the two differ by rounding (about 3e-7 on a loss after an epoch), and
training amplifies rounding like any perturbation: a small CNN at lr 0.06 went from 1e-7
a step to 1e-3 in its conv weights within an epoch (a direction batch norm hides in
training and evaluation shows). So the architectures are compared in float64, where
rounding is negligible and any real difference in the math would show: every metric
within 1e-6 (both loops sum the validation loss in float32) and the diagnostics within
1e-6 relative. The MLP is also compared in float32, as it runs: within 1e-5, no
validation prediction flipping.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from collections.abc import Callable

import pytest
import torch

from sweeps.trial.building import build_trial_model
from sweeps.trial.fused.loop import run_group_training
from sweeps.trial.fused.members import member_specs
from sweeps.trial.fused.model import FUSED_ARCHITECTURES, build_fused_model
from sweeps.trial.training import run_training
from tests.conftest import digits, trial_settings

FLOAT64 = 1e-6
FLOAT32 = 1e-5


def collect(reports: list) -> Callable[[dict, dict | None], None]:
    """A report callback that keeps every epoch's metrics in `reports`."""
    return lambda metrics, checkpoint: reports.append(metrics)


def mixed_group(activations, *, optimizer="sgd"):
    """Members that differ in everything a group may mix: activation, batch norm, init, lr, weight
    decay, momentum, bias init."""
    group = []
    for index, (activation, batch_norm) in enumerate(itertools.product(activations, [True, False])):
        init = ("he", "xavier", "small_random")[index % 3]
        group.append(
            (
                index,
                {
                    "lr": (0.02 * (1 + index % 3))
                    if optimizer == "sgd"
                    else 1e-3 * (1 + index % 2),
                    "weight_decay": 1e-4 * (index % 3),
                    "momentum": 0.5 + 0.04 * (index % 10),
                    "activation": activation,
                    "batch_norm": batch_norm,
                    "init": init,
                    "bias_init": 0.01 * (index % 2),
                },
            )
        )
    return sorted(group, key=lambda member: (member[1]["activation"], member[1]["batch_norm"]))


def member_reports(reports, key):
    """A member's per-epoch metrics and diagnostics from a group's reports, as its solo trial
    reports them."""
    found = []
    for report in reports:
        members = json.loads(report["members"])
        if key in members:
            found.append(
                members[key]
                | {"epoch": report["epoch"], "diagnostics": report.get("diagnostics", {}).get(key)}
            )
    return found


def assert_same_training(solo, fused, *, tolerance=FLOAT32):
    assert [report["epoch"] for report in solo] == [report["epoch"] for report in fused]
    for mine, theirs in zip(fused, solo, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert mine[key] == pytest.approx(theirs[key], abs=tolerance), key
        assert mine.get("stop_reason") == theirs.get("stop_reason") and mine.get(
            "diverged"
        ) == theirs.get("diverged")
        ours, solos = mine["diagnostics"], theirs["diagnostics"]
        assert [step for step, _ in ours["update_ratios"]] == [
            step for step, _ in solos["update_ratios"]
        ]
        for (_, a), (_, b) in zip(ours["update_ratios"], solos["update_ratios"], strict=True):
            assert a.keys() == b.keys() and a == pytest.approx(b, rel=10 * tolerance)
        assert [step for step, _ in ours["activations"]] == [
            step for step, _ in solos["activations"]
        ]
        for (_, a), (_, b) in zip(ours["activations"], solos["activations"], strict=True):
            assert a.keys() == b.keys()
            for layer in a:
                assert a[layer] == pytest.approx(b[layer], abs=tolerance), layer
        assert [snapshot["step"] for snapshot in ours["histograms"]] == [
            snapshot["step"] for snapshot in solos["histograms"]
        ]
        assert [(alert["parameter"], alert["direction"]) for alert in ours["alerts"]] == [
            (alert["parameter"], alert["direction"]) for alert in solos["alerts"]
        ]


CASES = {
    # an MLP with every activation but maxout (which groups only with maxout), batch norm on and off
    "mlp-sgd": (
        {"model": {"arch": "mlp", "hidden": [32, 32]}, "train": {"epochs": 3}},
        ["relu", "tanh", "sigmoid", "leaky_relu", "elu"],
    ),
    "mlp-adam": (
        {"model": {"arch": "mlp", "hidden": [32]}, "train": {"epochs": 3, "optimizer": "adam"}},
        ["relu", "tanh"],
    ),
    "mlp-maxout": (
        {"model": {"arch": "mlp", "hidden": [16, 16]}, "train": {"epochs": 2}},
        ["maxout"],
    ),
    # grouped convolutions, per-member batch norm on channel blocks, a residual block with a
    # shortcut conv
    "cnn": (
        {"model": {"arch": "cnn", "channels": [4, 8]}, "train": {"epochs": 2}},
        ["relu", "elu"],
    ),
    "resnet": (
        {"model": {"arch": "resnet", "widths": [4, 8]}, "train": {"epochs": 2}},
        ["relu", "tanh"],
    ),
}


@pytest.fixture
def float64():
    """Models and data in float64 for the test."""
    torch.set_default_dtype(torch.float64)
    data = digits()
    yield dataclasses.replace(data, train_x=data.train_x.double(), val_x=data.val_x.double())
    torch.set_default_dtype(torch.float32)


def train_both(case, data):
    sweep, activations = CASES[case]
    settings = trial_settings(
        {
            **sweep,
            "early_stopping": {"scheduler": "none"},
            "diagnostics": {"every_n_steps": 7, "activations_every_n_steps": 20},
        }
    )
    group = mixed_group(activations, optimizer=settings.optimizer)
    reports = []
    run_group_training(group, settings, data, lambda metrics, checkpoint: reports.append(metrics))
    assert json.loads(reports[-1]["ended"]).keys() == {
        str(index) for index, _ in group
    }  # every member completed
    assert reports[-1]["active"] == []
    for index, sampled in group:
        solo = []
        run_training(sampled, settings, data, collect(solo))
        yield solo, member_reports(reports, str(index))


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_member_trains_as_its_trial_alone(case, float64):
    for solo, fused in train_both(case, float64):
        assert_same_training(solo, fused, tolerance=FLOAT64)


def test_each_mlp_member_trains_as_its_trial_alone_in_float32():
    for solo, fused in train_both("mlp-sgd", digits()):
        assert_same_training(solo, fused, tolerance=FLOAT32)


def test_a_fused_model_starts_from_each_members_solo_model():
    settings = trial_settings({"model": {"arch": "resnet", "widths": [4, 8]}})
    data = digits()
    members = member_specs(mixed_group(["relu", "elu"]), settings.seed)
    fused = build_fused_model(settings, members, data).eval()
    images = data.inputs(data.val_x[:32])
    logits = fused(fused.shared(images))
    for m, member in enumerate(members):
        torch.manual_seed(member.model_seed)
        solo = build_trial_model(settings, member.params, data).eval()
        assert torch.allclose(logits[m], solo(images), atol=1e-5)
    # Parameters keep their solo names, with the member dimension first.
    solo_names = dict(solo.named_parameters())
    fused_names = dict(fused.named_parameters())
    assert {name for name, param in solo_names.items() if param.ndim >= 2} == {
        name for name, param in fused_names.items() if param.ndim >= 3
    }


def test_every_fusable_architecture_is_listed_for_the_driver():
    from sweeps.driver.planning.fusion import FUSABLE_ARCHITECTURES

    assert sorted(FUSED_ARCHITECTURES) == sorted(FUSABLE_ARCHITECTURES)


def test_a_member_stopped_by_early_stopping_leaves_and_the_others_train_on_unchanged():
    settings = trial_settings(
        {
            "model": {"arch": "mlp", "hidden": [32]},
            "train": {"epochs": 3},
            "early_stopping": {"scheduler": "none"},
        }
    )
    group = mixed_group(["relu", "tanh"])
    stop = {group[0][0], group[2][0]}
    decided = []

    def decide(results):
        decided.append([(index, epoch, ends) for index, epoch, _, ends in results])
        return [index in stop and epoch == 1 for index, epoch, _, _ in results]

    reports, checkpoints = [], []
    run_group_training(
        group,
        settings,
        digits(),
        lambda metrics, checkpoint: (reports.append(metrics), checkpoints.append(checkpoint)),
        decide=decide,
    )
    # the stopped members report no more
    assert len(decided[0]) == len(group) and len(decided[1]) == len(group) - 2
    # in sampling order, as unfused trials arrive
    assert [index for index, _, _ in decided[0]] == sorted(index for index, _ in group)
    # the last epoch ends every member
    assert [ends for *_, ends in decided[-1]] == [True] * (len(group) - 2)
    ended = json.loads(reports[-1]["ended"])
    for index in stop:
        assert ended[str(index)]["early_stopped"] is True and ended[str(index)]["epoch"] == 1
    assert sorted(reports[0]["active"]) == sorted(index for index, _ in group if index not in stop)
    for index, sampled in group:
        if index in stop:
            continue
        solo = []
        run_training(sampled, settings, digits(), collect(solo))
        assert_same_training(solo, member_reports(reports, str(index)))
    # the group's end is checkpointed, with nobody left to train
    assert checkpoints[-1]["members"] == []


def test_a_diverging_member_ends_alone():
    settings = trial_settings({"model": {"arch": "mlp", "hidden": [32]}, "train": {"epochs": 3}})
    group = [(0, {"lr": 0.05}), (1, {"lr": 1.0e3, "batch_size": 64}), (2, {"lr": 0.1})]
    reports = []
    run_group_training(
        group, settings, digits(), lambda metrics, checkpoint: reports.append(metrics)
    )
    ended = json.loads(reports[-1]["ended"])
    assert (
        ended["1"]["diverged"] is True
        and ended["1"]["stop_reason"].startswith("diverged")
        and ended["1"]["epoch"] < 3
    )
    assert ended["0"]["epoch"] == ended["2"]["epoch"] == 3 and "stop_reason" not in ended["0"]
    solo = []
    run_training(group[1][1], settings, digits(), lambda metrics, checkpoint: solo.append(metrics))
    assert solo[-1]["stop_reason"] == ended["1"]["stop_reason"]


def test_a_member_stopped_by_an_alert_mid_epoch_ends_as_its_trial_does():
    # lr 2 makes updates too big without the loss exploding; stop_on stops its trial mid-epoch once
    # the first epoch's warm-up is over (no warm-up steps beyond it here). Only the head alerts:
    # batch norm follows the hidden layers, which makes their scale, and so their ratio, no signal.
    settings = trial_settings(
        {
            "model": {"arch": "mlp", "hidden": [64, 64]},
            "train": {"epochs": 3},
            "early_stopping": {"scheduler": "none"},
            "diagnostics": {
                "stop_on": "too_high",
                "every_n_steps": 2,
                "update_ratio": {"warmup_steps": 0},
            },
        }
    )
    group = [
        (0, {"lr": 2.0, "activation": "relu", "batch_norm": True}),
        (1, {"lr": 0.02, "activation": "relu", "batch_norm": True}),
    ]
    reports = []
    run_group_training(
        group, settings, digits(), lambda metrics, checkpoint: reports.append(metrics)
    )
    for index, sampled in group:
        solo = []
        run_training(sampled, settings, digits(), collect(solo))
        assert_same_training(solo, member_reports(reports, str(index)))
    assert json.loads(reports[-1]["ended"])["0"]["stop_reason"].startswith("too_high: layers.")


def test_a_group_resumed_from_its_checkpoint_goes_on_exactly():
    settings = trial_settings(
        {
            "model": {"arch": "cnn", "channels": [4]},
            "train": {"epochs": 4, "checkpoint_every": 2, "checkpoint_min_interval_s": 0},
            "early_stopping": {"scheduler": "none"},
        }
    )
    group = mixed_group(["relu"])
    straight, checkpoints = [], {}

    def record(metrics, checkpoint):
        straight.append(metrics)
        if checkpoint is not None:
            # its tensors are the live ones
            checkpoints[metrics["epoch"]] = copy.deepcopy(checkpoint)

    run_group_training(group, settings, digits(), record)
    assert sorted(checkpoints) == [2, 4]
    assert (
        checkpoints[2]["members"] == [index for index, _ in group]
        and checkpoints[2]["preprocess"]["name"] == "per_channel_mean"
    )
    resumed = []
    run_group_training(
        group,
        settings,
        digits(),
        lambda metrics, checkpoint: resumed.append(metrics),
        resume_from=checkpoints[2],
    )
    assert [report["epoch"] for report in resumed] == [3, 4]
    assert [json.loads(report["members"]) for report in resumed] == [
        json.loads(report["members"]) for report in straight[2:]
    ]
