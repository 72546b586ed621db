"""The activation modules PyTorch lacks: maxout, and leaky ReLU with the lecture's slope."""

from __future__ import annotations

from torch import Tensor, nn

from models.activations import LEAKY_RELU_SLOPE


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

    def __init__(self) -> None:
        super().__init__(negative_slope=LEAKY_RELU_SLOPE)
