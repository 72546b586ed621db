"""Batch norm on or off: the one place `batch_norm: false` becomes nn.Identity."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_BATCH_NORMS: dict[int, type[nn.Module]] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


def get_norm(batch_norm: bool, *, dims: int) -> Callable[[int], nn.Module]:
    """A constructor `norm_layer(num_features)`; Identity when batch norm is off."""
    if not batch_norm:
        return lambda num_features: nn.Identity()
    try:
        return _BATCH_NORMS[dims]
    except KeyError:
        raise ValueError(
            f"no batch norm for {dims}-d features; choose from {sorted(_BATCH_NORMS)}"
        ) from None
