"""A plain ConvNet: conv -> (batch norm) -> activation -> max-pool blocks, then a linear head."""
from __future__ import annotations

from torch import Tensor, nn

from models.blocks import Parts


class CNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, *, parts: Parts, channels: list[int] = (32, 64)) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels_in = in_channels
        for width in channels:
            # ceil_mode keeps a 1x1 map 1x1, so any depth works on 8x8 digits and 224x224 photos alike.
            blocks += [*parts.conv_norm_act(channels_in, width), nn.MaxPool2d(2, ceil_mode=True)]
            channels_in = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = parts.linear(channels_in, num_classes, activation="linear")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))
