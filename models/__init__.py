"""The model zoo: pure PyTorch, importable without Ray or MLflow.

Importing the package and its registries does not import torch: an architecture's
module is imported when it is built, so the sweep file's schema and `sweep validate`
read every registry's names in a blink.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from models.activations import ACTIVATIONS, get_activation
from models.initializers import INITIALIZERS, get_initializer

if TYPE_CHECKING:
    from torch import nn


def _mlp(shape: tuple[int, ...], classes: int, **options: Any) -> nn.Module:
    from models.mlp import MLP

    return MLP(math.prod(shape), classes, **options)


def _cnn(shape: tuple[int, ...], classes: int, **options: Any) -> nn.Module:
    from models.cnn import CNN

    height, width = shape[1:3]
    return CNN(shape[0], classes, input_size=(height, width), **options)


def _resnet(shape: tuple[int, ...], classes: int, **options: Any) -> nn.Module:
    from models.resnet import ResNet

    return ResNet(shape[0], classes, **options)


def _pretrained(shape: tuple[int, ...], classes: int, **options: Any) -> nn.Module:
    from models.pretrained import Pretrained

    return Pretrained(shape, classes, **options)


# name -> builder(input_shape (C, H, W), num_classes, *, parts, **architecture options)
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": _mlp,
    "cnn": _cnn,
    "resnet": _resnet,
    "pretrained": _pretrained,
}


def build_model(
    arch: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    activation: str = "relu",
    init: str = "he",
    batch_norm: bool = False,
    bias_init: float = 0.0,
    **options: Any,
) -> nn.Module:
    """Build architecture `arch` for inputs of `input_shape` (C, H, W) and `num_classes` outputs.

    `options` are the architecture's own settings (`hidden` for mlp, `channels`
    for cnn, ...); the trial's parts (activation, init, batch norm) plug into every one.
    """
    from models.blocks import Parts

    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(
            f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}"
        ) from None
    parts = Parts(activation=activation, init=init, batch_norm=batch_norm, bias_init=bias_init)
    return builder(tuple(input_shape), num_classes, parts=parts, **options)


__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "INITIALIZERS",
    "build_model",
    "get_activation",
    "get_initializer",
]
