"""The model zoo: pure PyTorch, importable without Ray or MLflow."""
from __future__ import annotations

import math
from typing import Any, Callable

from torch import nn

from models.activations import ACTIVATIONS, get_activation
from models.initializers import INITIALIZERS, get_initializer
from models.mlp import MLP


def _build_mlp(input_shape: tuple[int, ...], num_classes: int, **options: Any) -> nn.Module:
    return MLP(math.prod(input_shape), num_classes, **options)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": _build_mlp,
}


def build_model(arch: str, *, input_shape: tuple[int, ...], num_classes: int, **options: Any) -> nn.Module:
    """Build architecture `arch` for inputs of `input_shape` (C, H, W) and `num_classes` outputs.

    `options` are the architecture's own settings (e.g. `hidden`) and the
    trial's parts: activation, init, batch_norm, bias_init.
    """
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}") from None
    return builder(input_shape, num_classes, **options)


__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "INITIALIZERS",
    "build_model",
    "get_activation",
    "get_initializer",
]
