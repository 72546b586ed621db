"""A multi-layer perceptron: linear -> (batch norm) -> activation per hidden width."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from models.blocks import Parts


class MLP(nn.Module):
    """`layers` is one Sequential so parameter names read `layers.0.weight`,
    `layers.3.weight`, ... in diagnostics and MLflow."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        parts: Parts,
        hidden: Sequence[int] = (128, 128, 128),
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width_in = in_features
        for width in hidden:
            blocks += parts.linear_norm_act(width_in, width)
            width_in = width
        blocks.append(parts.linear(width_in, num_classes, activation="linear"))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(1))
