"""Building blocks shared by the architectures: a layer followed by norm and activation."""

from __future__ import annotations

from torch import nn

from models.activations import get_activation, pieces_per_unit
from models.initializers import initialize_layer
from models.norms import get_norm


class Parts:
    """A trial's choice of activation, initializer and norm, resolved once per model.

    Blocks ask it for layers, so every architecture plugs the same parts in the
    same way: layer -> norm -> activation, with maxout's extra pieces included.
    """

    def __init__(self, *, activation: str, init: str, batch_norm: bool, bias_init: float) -> None:
        self.activation = activation
        self.init = init
        self.bias_init = bias_init
        self.act_layer = get_activation(activation)
        self.pieces = pieces_per_unit(self.act_layer)
        self.batch_norm = batch_norm

    def linear(self, width_in: int, width_out: int, *, activation: str | None = None) -> nn.Linear:
        layer = nn.Linear(width_in, width_out)
        self.initialize(layer, activation=activation)
        return layer

    def conv(
        self,
        channels_in: int,
        channels_out: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        activation: str | None = None,
    ) -> nn.Conv2d:
        # No bias when batch norm follows: BN's shift makes it redundant.
        layer = nn.Conv2d(
            channels_in,
            channels_out,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=not self.batch_norm,
        )
        self.initialize(layer, activation=activation)
        return layer

    def initialize(self, layer: nn.Linear | nn.Conv2d, *, activation: str | None = None) -> None:
        """Initialize for the activation that follows (`linear` for a classifier head)."""
        bias_init = self.bias_init if activation is None else 0.0
        initialize_layer(
            layer, init=self.init, activation=activation or self.activation, bias_init=bias_init
        )

    def norm(self, width: int, *, dims: int) -> nn.Module:
        return get_norm(self.batch_norm, dims=dims)(width)

    def linear_norm_act(self, width_in: int, width_out: int) -> list[nn.Module]:
        return [
            self.linear(width_in, width_out * self.pieces),
            self.norm(width_out * self.pieces, dims=1),
            self.act_layer(),
        ]

    def conv_norm_act(
        self, channels_in: int, channels_out: int, *, stride: int = 1
    ) -> list[nn.Module]:
        return [
            self.conv(channels_in, channels_out * self.pieces, stride=stride),
            self.norm(channels_out * self.pieces, dims=2),
            self.act_layer(),
        ]
