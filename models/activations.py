"""Activation functions by name: the one place a config string becomes an nn.Module class."""
from __future__ import annotations

from torch import Tensor, nn


class Maxout(nn.Module):
    """max over `pieces` linear units per output (Goodfellow et al. 2013).

    The preceding layer produces `pieces` times as many units; this module keeps
    the largest of each group, which is why maxout doubles a layer's weights.
    """

    pieces = 2

    def forward(self, x: Tensor) -> Tensor:
        # Units are laid out [unit0 piece0, unit0 piece1, unit1 piece0, ...] along dim 1,
        # so conv feature maps (N, C*k, H, W) and linear outputs (N, C*k) split alike.
        n, width = x.shape[0], x.shape[1]
        grouped = x.reshape(n, width // self.pieces, self.pieces, *x.shape[2:])
        return grouped.amax(dim=2)


class LeakyReLU(nn.LeakyReLU):
    """Leaky ReLU with the lecture's slope of 0.01 for negative inputs."""

    negative_slope_default = 0.01

    def __init__(self) -> None:
        super().__init__(negative_slope=self.negative_slope_default)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": LeakyReLU,
    "elu": nn.ELU,
    "maxout": Maxout,
}


def get_activation(name: str | type[nn.Module]) -> type[nn.Module]:
    """The activation class for `name`; a class passes through untouched."""
    if isinstance(name, type):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}") from None


def pieces_per_unit(activation: type[nn.Module]) -> int:
    """How many pre-activation units feed one output unit (2 for maxout, else 1)."""
    return getattr(activation, "pieces", 1)
