"""Where a trial computes: CPU or CUDA, bf16 autocast, channels_last (the GPU test skips without a
GPU)."""

from __future__ import annotations

import pytest
import torch

from sweeps.trial.building import resolve_placement
from sweeps.trial.data import DataSpec, load_split
from sweeps.trial.training import run_training
from tests.conftest import trial_settings


def test_cuda_without_a_gpu_says_what_to_do():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so train.device: cuda is valid here")
    with pytest.raises(RuntimeError, match="set resources.gpus_per_trial above 0"):
        resolve_placement(trial_settings(device="cuda"))
    assert (
        resolve_placement(trial_settings({"model": {"arch": "cnn"}}, device="auto")).device.type
        == "cpu"
    )


def test_bf16_autocast_trains():
    data = load_split(DataSpec("digits"), val_fraction=0.2, preprocess="per_channel_mean", seed=0)
    reports = []
    run_training(
        {"lr": 0.05, "batch_norm": True},
        trial_settings({"model": {"hidden": [64]}, "train": {"epochs": 2, "precision": "bf16"}}),
        data,
        lambda metrics, _: reports.append(metrics),
    )
    assert reports[-1]["val_acc"] > 0.8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine")
def test_gpu_trial_keeps_the_data_on_the_device_and_uses_channels_last():
    settings = trial_settings(
        {
            "model": {"arch": "resnet", "widths": [16, 32]},
            "train": {"epochs": 2, "precision": "bf16"},
        }
    )
    placement = resolve_placement(settings)
    assert placement.device.type == "cuda" and placement.channels_last
    data = load_split(
        DataSpec("synthetic", num_examples=512, num_classes=4, shape=(3, 32, 32)),
        val_fraction=0.2,
        preprocess="standardize",
        seed=0,
    )
    on_device = data.to(placement.device, memory_format=torch.channels_last)
    assert on_device.train_x.is_cuda and on_device.train_x.is_contiguous(
        memory_format=torch.channels_last
    )
    reports = []
    run_training(
        {"lr": 0.05, "batch_norm": True}, settings, data, lambda metrics, _: reports.append(metrics)
    )
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]
