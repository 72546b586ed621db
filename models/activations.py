"""Activation functions by name: the one place a config string becomes an nn.Module class.

The registry knows its names without importing torch, so the sweep file's schema
and `sweep validate` list them in a blink; a class is imported when looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

LEAKY_RELU_SLOPE = 0.01  # the lecture's slope for negative inputs


class _ClassesByPath(Mapping[str, "type[nn.Module]"]):
    """name -> class given as "module:Class", imported on first lookup."""

    def __init__(self, paths: dict[str, str]) -> None:
        self._paths = paths

    def __getitem__(self, name: str) -> type[nn.Module]:
        module, _, attribute = self._paths[name].partition(":")
        return getattr(importlib.import_module(module), attribute)

    def __contains__(self, name: object) -> bool:  # without importing the class
        return name in self._paths

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


ACTIVATIONS: Mapping[str, type[nn.Module]] = _ClassesByPath(
    {
        "sigmoid": "torch.nn:Sigmoid",
        "tanh": "torch.nn:Tanh",
        "relu": "torch.nn:ReLU",
        "leaky_relu": "models.activation_layers:LeakyReLU",
        "elu": "torch.nn:ELU",
        "maxout": "models.activation_layers:Maxout",
    }
)


def get_activation(name: str | type[nn.Module]) -> type[nn.Module]:
    """The activation class for `name`; a class passes through untouched."""
    if isinstance(name, type):
        return name
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}"
        ) from None


def pieces_per_unit(activation: type[nn.Module]) -> int:
    """How many pre-activation units feed one output unit (2 for maxout, else 1)."""
    return getattr(activation, "pieces", 1)
