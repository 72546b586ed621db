"""`data.preprocess: backbone`: the default for pretrained weights, applied from named weights'
metadata or a stated normalization, and refused in one line when neither says what it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sweeps.driver.planning.plan import load_sweep_data
from sweeps.driver.sweep_file.validation import ConfigError, validate_sweep

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SYNTHETIC = {
    "dataset": "synthetic",
    "synthetic": {"num_examples": 40, "num_classes": 2, "shape": [3, 8, 8]},
}


def sweep(data: dict | None = None, model: dict | None = None):
    return validate_sweep(
        {"name": "t", "params": {"lr": 0.01}, "data": data or {}, "model": model or {}},
        source="t.yaml",
    )


@pytest.mark.parametrize(
    ("model", "data", "preprocess"),
    [
        ({"arch": "pretrained", "weights": "ResNet18_Weights.IMAGENET1K_V1"}, {}, "backbone"),
        (
            {"arch": "pretrained", "weights": "w.pt"},
            {"normalization": {"mean": [0.5], "std": [0.25]}},
            "backbone",
        ),
        (
            {"arch": "pretrained", "weights": None},
            {},
            "per_channel_mean",
        ),  # random init knows no normalization
        (
            {"arch": "pretrained", "weights": "DEFAULT"},
            {"preprocess": "standardize"},
            "standardize",
        ),  # what the file says wins
        ({"arch": "mlp"}, {}, "per_channel_mean"),
    ],
)
def test_preprocess_defaults_to_the_backbones_own_for_pretrained_weights(model, data, preprocess):
    assert sweep(data, model).data.preprocess == preprocess


def test_a_state_dict_without_normalization_is_refused_in_one_line_that_says_how_to_state_it():
    with pytest.raises(ConfigError) as refused:
        sweep(SYNTHETIC, {"arch": "pretrained", "weights": "./my-backbone.pt"})
    (line,) = refused.value.lines()
    assert line.startswith(
        "t.yaml: data.normalization: model.weights ./my-backbone.pt is a state_dict file"
    )
    assert "data.normalization: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}" in line


def test_named_weights_normalize_with_their_own_statistics_not_the_datas():
    data = load_sweep_data(
        sweep(SYNTHETIC, {"arch": "pretrained", "weights": "ResNet18_Weights.IMAGENET1K_V1"})
    )
    assert data.preprocess == "backbone"
    assert np.allclose(data.stats["mean"].ravel(), IMAGENET_MEAN) and np.allclose(
        data.stats["std"].ravel(), IMAGENET_STD
    )
    on_cpu = data.to(torch.device("cpu"))
    images = torch.from_numpy(data.val_x)  # synthetic images are floats in [0, 1]
    expected = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    assert torch.allclose(on_cpu.inputs(on_cpu.val_x), expected, atol=1e-6)


def test_a_stated_normalization_makes_grayscale_the_three_channels_an_rgb_backbone_expects():
    config = sweep(
        {"preprocess": "backbone", "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}},
        {"arch": "pretrained", "weights": "./gray.pt"},
    )
    data = load_sweep_data(config).to(torch.device("cpu"))
    assert data.input_shape == (1, 8, 8)  # digits stay one 8-bit channel on the device
    inputs = data.inputs(data.val_x)
    assert inputs.shape[1:] == (3, 8, 8)
    gray = data.val_x.float() / 16
    for channel in range(3):
        assert torch.allclose(
            inputs[:, channel],
            (gray[:, 0] - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel],
            atol=1e-6,
        )


def test_a_normalization_for_other_channels_names_the_field():
    from sweeps.trial.data import DataError

    config = sweep(
        {**SYNTHETIC, "normalization": {"mean": [0.5, 0.5], "std": [0.2, 0.2]}},
        {"arch": "pretrained", "weights": "./w.pt"},
    )
    with pytest.raises(
        DataError, match="has 2 values per field; the images have 3 channels"
    ) as refused:
        load_sweep_data(config)
    assert refused.value.field == "data.normalization"


def test_the_transfer_example_names_imagenet_weights_and_normalizes_with_them():
    from sweeps.driver.planning.feature_cache import sampled_trainable_layers, why_not_cached
    from sweeps.driver.planning.plan import backbone_normalization
    from sweeps.driver.sweep_file.reading import load_sweep
    from tests.conftest import REPO

    config = load_sweep(str(REPO / "examples" / "transfer_learning.yaml"))
    assert (
        config.data.dataset == "image_folder"
        and config.model.weights == "ResNet18_Weights.IMAGENET1K_V1"
    )
    assert config.data.preprocess == "backbone"  # by default, not written in the file
    normalization = backbone_normalization(config)
    assert list(normalization.mean) == IMAGENET_MEAN and list(normalization.std) == IMAGENET_STD
    assert why_not_cached(config) is None and sampled_trainable_layers(config) == [0, 1]
