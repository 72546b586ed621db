"""Weight initializers by name, each aware of the activation that follows the layer.

Each initializer imports torch when it runs, so the sweep file's schema lists the
names without loading PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from models.activations import LEAKY_RELU_SLOPE

if TYPE_CHECKING:
    import torch
    from torch import nn

Initializer = Callable[["torch.Tensor", str], None]
# The names torch.nn.init gives gains for, of those used here.
TorchNonlinearity = Literal["sigmoid", "tanh", "relu", "leaky_relu", "linear"]

# torch.nn.init names the nonlinearities it knows gains for; elu and maxout are
# rectifier-like (unbounded above, a kink at zero), so they take relu's numbers.
_TORCH_NONLINEARITY: dict[str, TorchNonlinearity] = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "elu": "relu",
    "maxout": "relu",
    "linear": "linear",
}
_RECTIFIERS = {"relu", "leaky_relu", "elu", "maxout"}


def _nonlinearity(activation: str) -> TorchNonlinearity:
    try:
        return _TORCH_NONLINEARITY[activation]
    except KeyError:
        raise ValueError(
            f"no initializer gain for activation {activation!r}; choose from "
            f"{sorted(_TORCH_NONLINEARITY)}"
        ) from None


def small_random(weight: torch.Tensor, activation: str) -> None:
    """N(0, 0.01^2): the lecture's first try, fine for small nets, vanishing in deep ones."""
    from torch import nn

    nn.init.normal_(weight, mean=0.0, std=0.01)


def xavier(weight: torch.Tensor, activation: str) -> None:
    """Glorot normal. The gain covers the saturating activations (tanh, sigmoid);
    rectifiers get gain 1, as in the lecture: correcting for the half of the units
    a rectifier zeroes is exactly what `he` adds."""
    from torch import nn

    nonlinearity = _nonlinearity(activation)
    gain = 1.0 if activation in _RECTIFIERS else nn.init.calculate_gain(nonlinearity)
    nn.init.xavier_normal_(weight, gain=gain)


def he(weight: torch.Tensor, activation: str) -> None:
    """Kaiming normal over fan-in, with the leaky slope for leaky_relu."""
    from torch import nn

    nonlinearity = _nonlinearity(activation)
    slope = LEAKY_RELU_SLOPE if activation == "leaky_relu" else 0.0
    nn.init.kaiming_normal_(weight, a=slope, mode="fan_in", nonlinearity=nonlinearity)


def keep_pytorch_default(weight: torch.Tensor, activation: str) -> None:
    """PyTorch's own initialization, left as the layer constructed it (its bias too)."""


INITIALIZERS: dict[str, Initializer] = {
    "small_random": small_random,
    "xavier": xavier,
    "he": he,
    "default": keep_pytorch_default,
}


def get_initializer(name: str | Initializer) -> Initializer:
    """The initializer function for `name`; a callable passes through untouched."""
    if callable(name):
        return name
    try:
        return INITIALIZERS[name]
    except KeyError:
        raise ValueError(
            f"unknown initializer {name!r}; choose from {sorted(INITIALIZERS)}"
        ) from None


def initialize_layer(
    layer: nn.Linear | nn.Conv2d, *, init: str, activation: str, bias_init: float
) -> None:
    """Initialize a linear or conv layer's weight for the activation that follows it."""
    from torch import nn

    initializer = get_initializer(init)
    initializer(layer.weight, activation)
    if layer.bias is not None and initializer is not keep_pytorch_default:
        nn.init.constant_(layer.bias, bias_init)
