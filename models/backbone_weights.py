"""Pretrained weights as a sweep file names them: a torchvision weights name or a state_dict
file, and the normalization named weights were trained with.

Importing this module does not import torch: the sweep file's schema tells a name from a
file with it. The normalization is read from torchvision's weights metadata, which is
part of the installed package: nothing is downloaded.
"""

from __future__ import annotations

import re

# ResNet18_Weights.IMAGENET1K_V1, or just the member (IMAGENET1K_V1, DEFAULT) as torchvision's
# builders take it.
WEIGHTS_NAME = re.compile(r"^([A-Za-z0-9_]+_Weights\.)?[A-Z][A-Z0-9_]*$")
IMAGENET_EXAMPLE = "ResNet18_Weights.IMAGENET1K_V1"


class WeightsError(ValueError):
    """Weights or a backbone torchvision does not know; names the sweep file's field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def is_weights_name(weights: str) -> bool:
    """True for a torchvision weights name, False for anything else (a state_dict file's path)."""
    return WEIGHTS_NAME.match(weights) is not None


def weights_normalization(
    backbone: str, weights: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel mean and std in [0, 1] units that torchvision's `weights` for `backbone`
    were trained with, from the weights' own transforms (ImageNet's for the ImageNet weights)."""
    import torchvision

    try:
        members = torchvision.models.get_model_weights(backbone)
    except (KeyError, ValueError):
        raise WeightsError(
            "model.backbone",
            f"unknown backbone {backbone!r}; choose from torchvision's classification models, "
            "e.g. resnet18",
        ) from None
    try:
        member = members.verify(weights)
    except (KeyError, ValueError):
        valid = [f"{members.__name__}.{member.name}" for member in members] + ["DEFAULT"]
        raise WeightsError(
            "model.weights", f"unknown weights {weights!r} for {backbone}; choose from {valid}"
        ) from None
    transforms = member.transforms()
    return tuple(float(value) for value in transforms.mean), tuple(
        float(value) for value in transforms.std
    )
