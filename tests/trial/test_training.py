"""The plain training loop and the data it eats, with no Ray in sight."""

from __future__ import annotations

import copy

import pytest
import torch

from sweeps.trial.building import trial_seed
from sweeps.trial.data import split_indices
from sweeps.trial.training import batch_indices, run_training
from tests.conftest import digits, trial_settings


def test_split_is_deterministic_by_seed_and_disjoint():
    train, val = split_indices(100, val_fraction=0.2, seed=3)
    again_train, again_val = split_indices(100, val_fraction=0.2, seed=3)
    assert (train == again_train).all() and (val == again_val).all()
    assert len(val) == 20 and not set(train) & set(val)
    assert not (split_indices(100, val_fraction=0.2, seed=4)[1] == val).all()


def test_per_channel_mean_uses_training_statistics_only():
    data = digits()
    raw = digits("none")
    # Training images are centred exactly; validation is shifted by the same training mean.
    assert abs(data.inputs(data.train_x).mean().item()) < 1e-5
    assert torch.allclose(
        data.inputs(data.val_x), raw.inputs(raw.val_x) - data.stats["mean"], atol=1e-6
    )
    assert not torch.allclose(
        data.stats["mean"], raw.inputs(raw.val_x).mean(dim=(0, 2, 3), keepdim=True)
    )


def test_a_trial_learns_digits_and_reports_every_epoch():
    reports = []
    settings = trial_settings(
        {"model": {"hidden": [64]}, "train": {"epochs": 3}, "search": {"seed": 0}}
    )
    run_training(
        {"lr": 0.05, "activation": "relu", "init": "he"},
        settings,
        digits(),
        lambda metrics, _: reports.append(metrics),
    )
    assert [report["epoch"] for report in reports] == [1, 2, 3]
    assert set(reports[0]) == {
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "diagnostics",
    }
    assert reports[-1]["val_acc"] > 0.9
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]


def test_same_params_same_seed_train_identically():
    settings = trial_settings(
        {"model": {"hidden": [32]}, "train": {"epochs": 2}, "search": {"seed": 5}}
    )
    first, second = [], []
    run_training({"lr": 0.1}, settings, digits(), lambda metrics, _: first.append(metrics))
    run_training({"lr": 0.1}, settings, digits(), lambda metrics, _: second.append(metrics))
    assert first == second
    assert trial_seed({"lr": 0.1}, 5) != trial_seed({"lr": 0.2}, 5)


def test_batches_cover_the_epoch_without_a_lone_example():
    generator = torch.Generator().manual_seed(0)
    batches = list(batch_indices(129, 64, generator))
    assert [len(batch) for batch in batches] == [64, 64]
    assert [len(batch) for batch in batch_indices(130, 64, generator)] == [64, 64, 2]


def test_resuming_from_a_checkpoint_continues_exactly():
    """A trial restarted from its epoch-2 checkpoint reports what the uninterrupted trial did."""
    settings = trial_settings(
        {
            "model": {"hidden": [32]},
            "train": {"epochs": 4, "checkpoint_every": 2, "checkpoint_min_interval_s": 0},
            "search": {"seed": 1},
        }
    )
    params = {"lr": 0.05, "batch_norm": True}
    straight, checkpoints = [], {}

    def record(metrics, checkpoint):
        straight.append(metrics)
        if checkpoint is not None:
            # its tensors are the live ones
            checkpoints[metrics["epoch"]] = copy.deepcopy(checkpoint)

    run_training(params, settings, digits(), record)
    assert sorted(checkpoints) == [2, 4]  # every 2 epochs, and always the last
    saved = checkpoints[2]
    assert saved["preprocess"]["name"] == "per_channel_mean"
    assert torch.equal(saved["preprocess"]["stats"]["mean"], digits().stats["mean"])
    assert saved["preprocess"]["full_scale"] == 16  # digits are stored as whole numbers 0..16

    resumed = []
    run_training(
        params, settings, digits(), lambda metrics, _: resumed.append(metrics), resume_from=saved
    )
    assert [m["epoch"] for m in resumed] == [3, 4]
    assert resumed == straight[2:]


@pytest.mark.parametrize(
    ("min_interval_s", "checkpointed"),
    [
        (0, [1, 2, 3, 4]),
        (3600, [4]),
    ],  # no minimum: every epoch; an hour: only the last epoch of a short trial
)
def test_checkpoints_keep_their_minimum_interval(min_interval_s, checkpointed):
    settings = trial_settings(
        {
            "model": {"hidden": [32]},
            "train": {
                "epochs": 4,
                "checkpoint_every": 1,
                "checkpoint_min_interval_s": min_interval_s,
            },
        }
    )
    epochs = []
    run_training(
        {"lr": 0.05},
        settings,
        digits(),
        lambda metrics, checkpoint: checkpoint is not None and epochs.append(metrics["epoch"]),
    )
    assert epochs == checkpointed


def test_a_trial_that_ends_early_saves_a_checkpoint_despite_the_interval():
    """A diverged trial stops at once: its last epoch is checkpointed however recent the previous
    save."""
    settings = trial_settings(
        {"model": {"hidden": [32]}, "train": {"epochs": 6, "checkpoint_min_interval_s": 3600}}
    )
    reports = []
    run_training(
        {"lr": 1.0e3, "batch_size": 64},
        settings,
        digits(),
        lambda metrics, checkpoint: reports.append((metrics, checkpoint)),
    )
    last, checkpoint = reports[-1]
    assert last.get("diverged") and last["epoch"] < 6
    assert checkpoint is not None and checkpoint["epoch"] == last["epoch"]
    assert all(saved is None for _, saved in reports[:-1])
