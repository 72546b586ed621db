"""The driver's side of frozen-feature caching: which prefixes a sweep needs, when it caches none,
and what a person is told."""

from __future__ import annotations

import subprocess
import sys

import pytest
from rich.console import Console

from sweeps.driver.events.progress import ProgressPrinter, _LivePanel
from sweeps.driver.planning.feature_cache import (
    SweepFeatures,
    sampled_trainable_layers,
    why_not_cached,
)
from sweeps.driver.sweep_file.validation import validate_sweep
from tests.conftest import REPO


def sweep(
    params: dict, *, model: dict | None = None, data: dict | None = None, num_samples: int = 16
):
    model = {"arch": "pretrained", "weights": "ResNet18_Weights.IMAGENET1K_V1", **(model or {})}
    raw = {
        "name": "t",
        "params": {"lr": 0.01, **params},
        "model": model,
        "data": data or {},
        "search": {"num_samples": num_samples},
    }
    return validate_sweep(raw, source="t.yaml")


def test_the_prefixes_needed_are_those_of_the_trials_the_sweep_will_sample():
    assert sampled_trainable_layers(sweep({})) == [0]  # the parameter's default: a linear probe
    assert sampled_trainable_layers(sweep({"trainable_layers": 2})) == [2]
    assert sampled_trainable_layers(sweep({"trainable_layers": {"choice": [0, 1, 3]}})) == [0, 1, 3]
    # Two trials cannot draw five values: only what they draw is computed.
    drawn = sampled_trainable_layers(
        sweep({"trainable_layers": {"int_uniform": [0, 4]}}, num_samples=2)
    )
    assert 1 <= len(drawn) <= 2 and set(drawn) <= {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    ("model", "data", "reason"),
    [
        ({"arch": "mlp"}, {}, "model.arch is not pretrained"),
        ({"cache_features": False}, {}, "model.cache_features is false"),
        (
            {"weights": None},
            {},
            "model.weights is null: each trial's frozen backbone is a random initialization of "
            "its own",
        ),
        (
            {},
            {"augment": "flip"},
            "data.augment: flip changes every batch's images, so every batch runs the whole "
            "backbone",
        ),
        (
            {},
            {"augment": "crop_flip"},
            "data.augment: crop_flip changes every batch's images, so every batch runs the "
            "whole backbone",
        ),
        ({}, {}, None),
    ],
)
def test_a_sweep_caches_nothing_when_augmentation_changes_the_images_or_it_is_turned_off(
    model, data, reason
):
    model = (
        model
        if model.get("arch") == "mlp"
        else {"arch": "pretrained", "weights": "DEFAULT", **model}
    )
    config = validate_sweep(
        {"name": "t", "params": {"lr": 0.01}, "model": model, "data": data}, source="t"
    )
    assert why_not_cached(config) == reason


def test_the_progress_panel_says_which_trials_train_on_cached_features():
    features = SweepFeatures(refs={0: object(), 2: object()})
    assert (
        features.note()
        == "frozen features cached for trainable_layers 0, 2: those trials train only what "
        "follows them"
    )
    assert SweepFeatures().note() is None
    printer = ProgressPrinter(
        num_samples=4, epochs=2, metric="val_acc", mode="max", echo=print, notes=[features.note()]
    )
    panel = _LivePanel.__new__(_LivePanel)  # its drawing without starting a live terminal display
    panel.progress = printer
    console = Console(record=True, width=200, file=open("/dev/null", "w"))
    console.print(panel.__rich__())
    text = console.export_text()
    assert "0/4 done" in text and "frozen features cached for trainable_layers 0, 2" in text


def test_the_driver_side_of_caching_imports_no_torch():
    script = (
        "import sys; from sweeps.driver.planning import feature_cache; from "
        "sweeps.driver.running import launch, tuner; from sweeps.trial import frozen_features, "
        "trainable\n"
        "print(sorted({'torch', 'torchvision'} & {name.split('.')[0] for name in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
