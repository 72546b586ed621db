"""Pretrained weights by name or file, and the normalization named weights were trained with, read
offline."""

from __future__ import annotations

import pytest

from models.backbone_weights import WeightsError, is_weights_name, weights_normalization

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.mark.parametrize(
    ("weights", "named"),
    [
        ("ResNet18_Weights.IMAGENET1K_V1", True),
        ("IMAGENET1K_V1", True),
        ("DEFAULT", True),
        ("EfficientNet_B0_Weights.IMAGENET1K_V1", True),
        ("./resnet18.pt", False),
        ("weights/resnet18.pth", False),
        ("resnet18", False),
        ("/abs/path/ResNet18_Weights.IMAGENET1K_V1.pt", False),
    ],
)
def test_a_weights_name_is_told_from_a_state_dict_file(weights, named):
    assert is_weights_name(weights) is named


@pytest.mark.parametrize("weights", ["ResNet18_Weights.IMAGENET1K_V1", "IMAGENET1K_V1", "DEFAULT"])
def test_named_weights_give_their_own_normalization_without_downloading(
    weights, tmp_path, monkeypatch
):
    # The torch hub cache is where a download would land; it stays empty.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    assert weights_normalization("resnet18", weights) == IMAGENET
    assert not (tmp_path / "torch-home").exists()


def test_other_backbones_read_their_own_weights_metadata():
    assert (
        weights_normalization("mobilenet_v3_small", "MobileNet_V3_Small_Weights.IMAGENET1K_V1")
        == IMAGENET
    )
    assert (
        weights_normalization("vit_b_16", "ViT_B_16_Weights.IMAGENET1K_SWAG_LINEAR_V1") == IMAGENET
    )


def test_unknown_weights_and_backbones_name_the_field_and_the_choices():
    with pytest.raises(WeightsError) as unknown_weights:
        weights_normalization("resnet18", "ResNet50_Weights.IMAGENET1K_V2")
    assert unknown_weights.value.field == "model.weights"
    assert "choose from ['ResNet18_Weights.IMAGENET1K_V1', 'DEFAULT']" in str(unknown_weights.value)
    with pytest.raises(WeightsError) as unknown_backbone:
        weights_normalization("resnet1800", "DEFAULT")
    assert unknown_backbone.value.field == "model.backbone"
