"""What `sweep lecture` measures in-process is what `sweep run` trains and logs on the same sweep
file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.pretrained import load_backbone
from sweeps.trial.data import DataSpec, load_split
from sweeps.trial.lecture import activations_at_init, best_metric, pretrain_backbone
from sweeps.trial.training import run_training
from tests.conftest import digits, trial_settings


def test_activations_at_initialization_are_the_ones_a_trial_logs_at_step_0():
    settings = trial_settings({"model": {"hidden": [64, 64, 64]}, "train": {"epochs": 1}})
    sampled = {"lr": 0.01, "activation": "tanh", "init": "xavier"}
    layers = activations_at_init(sampled, settings, digits())
    reports = []
    run_training(sampled, settings, digits(), lambda metrics, _: reports.append(metrics))
    step, logged = reports[0]["diagnostics"]["activations"][0]
    assert step == 0 and list(layers) == list(logged) == [
        "layers.2",
        "layers.5",
        "layers.8",
    ]  # linear, norm (or Identity), activation per layer
    for name, values in layers.items():
        assert values.shape == (128 * 64,)  # the probe batch's 128 examples, every unit
        assert values.std(ddof=1) == pytest.approx(logged[name]["act_std"], rel=1e-5)


def test_best_metric_is_the_best_epoch_a_trial_reports():
    settings = trial_settings(
        {"model": {"hidden": [16]}, "train": {"epochs": 3}, "diagnostics": {"enabled": False}}
    )
    sampled = {"lr": 0.05}
    reports = []
    run_training(sampled, settings, digits(), lambda metrics, _: reports.append(metrics["val_acc"]))
    assert best_metric(sampled, settings, digits()) == max(reports) > 0.5


def test_a_pretrained_backbone_is_saved_as_the_state_dict_model_weights_takes(tmp_path):
    data = load_split(
        DataSpec("synthetic", num_examples=48, num_classes=3, shape=(1, 16, 16)),
        val_fraction=0.25,
        preprocess="none",
        seed=0,
    )
    settings = trial_settings(
        {
            "model": {"arch": "pretrained", "backbone": "resnet18", "min_input_size": 16},
            "train": {"epochs": 1},
            "diagnostics": {"enabled": False},
        }
    )
    path = tmp_path / "backbone.pt"
    epochs = pretrain_backbone({"trainable_layers": 6, "lr": 0.01}, settings, data, path)
    assert [epoch["epoch"] for epoch in epochs] == [1]
    saved = torch.load(path, weights_only=True)
    fresh = load_backbone("resnet18", None).state_dict()
    assert set(saved) == set(fresh)
    # Trained where the shapes match (every block), torchvision's own classifier where they do not.
    assert saved["fc.weight"].shape == fresh["fc.weight"].shape == (1000, 512)
    assert not torch.equal(saved["layer4.1.conv2.weight"], fresh["layer4.1.conv2.weight"])
    loaded = load_backbone("resnet18", str(path)).state_dict()
    assert all(torch.equal(loaded[name], saved[name]) for name in saved)
    assert np.isfinite(epochs[0]["val_acc"])
