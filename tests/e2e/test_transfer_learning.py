"""Transfer learning the way a person does it, offline: a folder of PNGs, one sub-folder per
class, and a resnet18 state_dict file as the backbone; the sweep caches the frozen blocks'
features in Ray's object store, and the same sweep without caching trains the same trials to
the same losses, epoch by epoch.

Whether fine-tuning a pretrained backbone beats training from scratch on real data is the
lecture's transfer study (tests/e2e/test_lecture.py, on Fashion-MNIST)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sweeps.driver.sweep_file.validation import validate_sweep
from tests.conftest import sweep_runs

pytestmark = pytest.mark.slow

CLASSES = ("boot", "sandal")
PER_CLASS = 24


def write_photo_folder(root: Path) -> None:
    """Two classes of 28x28 grey PNGs a person might have: bright or dark blobs on noise."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for index in range(PER_CLASS):
            image = rng.integers(0, 60, size=(28, 28))
            image[8:20, 8:20] += 120 + 60 * label
            Image.fromarray(image.astype(np.uint8), mode="L").save(root / name / f"{index}.png")


def per_trial_val_loss(tracking_uri: str, experiment: str) -> dict[tuple[str, int], list[float]]:
    client, parents, children = sweep_runs(tracking_uri, experiment)
    assert len(parents) == 1 and len(children) == 2
    return {
        (child.data.params["lr"], yaml.safe_load(child.data.params["trainable_layers"])): [
            metric.value
            for metric in sorted(
                client.get_metric_history(child.info.run_id, "val_loss"),
                key=lambda metric: metric.step,
            )
        ]
        for child in children
    }


def test_cached_frozen_features_train_a_photo_folder_as_the_whole_backbone_does(
    tmp_path, tracking_uri, ray_connected
):
    import torch
    import torchvision

    from sweeps.driver.running.launch import run_sweep

    write_photo_folder(tmp_path / "photos")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pt")
    outputs: dict[str, list[str]] = {}
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        for experiment, cache in (("photos-cached", True), ("photos-whole", False)):
            config = validate_sweep(
                {
                    "name": experiment,
                    "data": {
                        "dataset": "image_folder",
                        "root": str(tmp_path / "photos"),
                        "image_size": 28,
                        "val_fraction": 0.25,
                        "normalization": {"mean": [0.3], "std": [0.3]},
                    },
                    "model": {
                        "arch": "pretrained",
                        "backbone": "resnet18",
                        "weights": str(tmp_path / "resnet18.pt"),
                        "min_input_size": 28,
                        "cache_features": cache,
                    },
                    "params": {
                        "lr": {"log_uniform": [5.0e-3, 2.0e-2]},
                        "trainable_layers": {"choice": [1, 2]},
                        "momentum": 0.9,
                        "batch_size": 12,
                    },
                    "train": {"epochs": 2, "fuse": "off"},
                    # seed 0 draws one trial of each trainable_layers: both prefixes are cached
                    "search": {"num_samples": 2, "max_concurrent": 2, "seed": 0},
                    "early_stopping": {"scheduler": "none"},
                    "mlflow": {"tracking_uri": tracking_uri},
                    "storage": {"path": str(tmp_path / "results")},
                },
                source="test",
            )
            outputs[experiment] = []
            outcome = run_sweep(config, echo=outputs[experiment].append)
            assert outcome.succeeded == 2, outputs[experiment]
    finally:
        os.chdir(here)

    cached_lines = "\n".join(outputs["photos-cached"])
    assert "frozen features: 2 set(s)" in cached_lines and "computed once" in cached_lines
    assert "frozen features: not cached: model.cache_features is false" in "\n".join(
        outputs["photos-whole"]
    )
    cached = per_trial_val_loss(tracking_uri, "photos-cached")
    whole = per_trial_val_loss(tracking_uri, "photos-whole")
    assert cached.keys() == whole.keys() and {layers for _, layers in cached} == {1, 2}
    for trial, losses in cached.items():
        assert len(losses) == 2 and losses == pytest.approx(whole[trial], rel=1e-3), trial
