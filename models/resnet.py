"""A small CIFAR-style ResNet (He et al. 2016) built from the trial's activation, init and norm."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from models.blocks import Parts


class BasicBlock(nn.Module):
    """conv-norm-act, conv-norm, plus the shortcut, then the activation.

    The second conv and the shortcut produce `pieces` times the width so the
    activation after the sum can be maxout too.
    """

    def __init__(self, channels_in: int, width: int, *, stride: int, parts: Parts) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            *parts.conv_norm_act(channels_in, width, stride=stride),
            parts.conv(width, width * parts.pieces),
            parts.norm(width * parts.pieces, dims=2),
        )
        if stride != 1 or channels_in != width * parts.pieces:
            self.shortcut: nn.Module = nn.Sequential(
                parts.conv(channels_in, width * parts.pieces, kernel_size=1, stride=stride),
                parts.norm(width * parts.pieces, dims=2),
            )
        else:
            self.shortcut = nn.Identity()
        self.act = parts.act_layer()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        parts: Parts,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 1,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(*parts.conv_norm_act(in_channels, widths[0]))
        stages: list[nn.Module] = []
        channels_in = widths[0]
        for index, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(BasicBlock(channels_in, width, stride=stride, parts=parts))
                channels_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = parts.linear(channels_in, num_classes, activation="linear")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.stages(self.stem(x))).flatten(1))
