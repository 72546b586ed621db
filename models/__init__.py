"""The model zoo: pure PyTorch, importable without Ray or MLflow."""
from __future__ import annotations

import math
from typing import Any, Callable

from torch import nn

from models.activations import ACTIVATIONS, get_activation
from models.blocks import Parts
from models.cnn import CNN
from models.initializers import INITIALIZERS, get_initializer
from models.mlp import MLP
from models.pretrained import Pretrained
from models.resnet import ResNet

# name -> builder(input_shape (C, H, W), num_classes, *, parts, **architecture options)
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": lambda shape, classes, **options: MLP(math.prod(shape), classes, **options),
    "cnn": lambda shape, classes, **options: CNN(shape[0], classes, **options),
    "resnet": lambda shape, classes, **options: ResNet(shape[0], classes, **options),
    "pretrained": lambda shape, classes, **options: Pretrained(shape, classes, **options),
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
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}") from None
    parts = Parts(activation=activation, init=init, batch_norm=batch_norm, bias_init=bias_init)
    return builder(tuple(input_shape), num_classes, parts=parts, **options)


__all__ = ["ACTIVATIONS", "ARCHITECTURES", "INITIALIZERS", "Parts", "build_model", "get_activation", "get_initializer"]
