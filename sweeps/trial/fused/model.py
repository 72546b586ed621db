"""The fused architectures: a group's members as one model, built from each member's own solo model.

Each fused model mirrors its solo architecture module for module, so parameters and
activations carry the solo names (`layers.0.weight`, `features.2`) that diagnostics and
MLflow use. A member's weights are copied from the solo model its trial would build
with its own seed, so a fused member starts exactly where that trial starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from models.activations import get_activation, pieces_per_unit
from sweeps.trial.building import build_trial_model
from sweeps.trial.data import ArrayT, SplitData
from sweeps.trial.fused.layers import (
    CHANNELS,
    ROWS,
    FusedConv2d,
    FusedLinear,
    MemberActivation,
    MemberBatchNorm,
    MemberLayer,
    channels_to_rows,
)
from sweeps.trial.fused.members import MemberSpec
from sweeps.trial_settings import TrialSettings


class FusedModel(nn.Module):
    """A group's model: input from `gather` (each member's own batch) or `shared` (one batch
    for every member), output logits (M, B, num_classes)."""

    layout = ROWS

    def __init__(self, members: list[MemberSpec]) -> None:
        super().__init__()
        self.members = list(members)
        pieces = {
            pieces_per_unit(get_activation(member.params["activation"])) for member in members
        }
        if len(pieces) != 1:
            raise ValueError(
                "a fused group cannot mix maxout with other activations: maxout doubles the "
                "layers' widths"
            )
        self.pieces = pieces.pop()

    @property
    def batch_norm(self) -> list[bool]:
        return [bool(member.params["batch_norm"]) for member in self.members]

    @property
    def activation(self) -> list[str]:
        return [member.params["activation"] for member in self.members]

    def norm(self, width: int) -> MemberBatchNorm:
        """Batch norm for the members that have it, on `width` * pieces units (maxout's pieces
        included)."""
        return MemberBatchNorm(
            len(self.members), width * self.pieces, layout=self.layout, batch_norm=self.batch_norm
        )

    def act(self) -> MemberActivation:
        return MemberActivation(layout=self.layout, activation=self.activation)

    def norm_act(self, width: int) -> list[nn.Module]:
        return [self.norm(width), self.act()]

    def conv(
        self, channels_in: int, channels_out: int, *, kernel_size: int = 3, stride: int = 1
    ) -> FusedConv2d:
        return FusedConv2d(
            len(self.members),
            channels_in,
            channels_out,
            kernel_size=kernel_size,
            stride=stride,
            batch_norm=self.batch_norm,
        )

    def gather(self, data: SplitData[Tensor], idx: Tensor) -> Tensor:
        """The model's input for member m's batch of training images data.train_x[idx[m]], idx being
        (M, B):
        the stored images gathered, then made inputs (SplitData.inputs) before their channels are
        fused."""
        if self.layout == ROWS:
            return data.inputs(data.train_x[idx]).flatten(2)
        batch = idx.shape[1]
        images = data.inputs(data.train_x[idx.t()])  # (B, M, C, H, W)
        return images.reshape(batch, -1, *images.shape[3:])  # (B, M*C, H, W), no copy

    def shared(self, images: Tensor) -> Tensor:
        """The model's input when every member sees the same batch (evaluation, the activation
        probe)."""
        if self.layout == ROWS:
            return images.flatten(1).expand(len(self.members), -1, -1)
        return images.repeat(1, len(self.members), 1, 1)

    def keep(self, positions: list[int]) -> None:
        """Only the members at `positions` stay: every parameter and buffer is indexed on its member
        dimension."""
        index = torch.tensor(positions, dtype=torch.long, device=next(self.parameters()).device)
        for module in self.modules():
            for name, param in list(module._parameters.items()):
                if param is not None:
                    module._parameters[name] = nn.Parameter(
                        param.detach()[index], requires_grad=param.requires_grad
                    )
            for name, buffer in list(module._buffers.items()):
                if buffer is not None and name not in module._non_persistent_buffers_set:
                    module._buffers[name] = buffer[index]
        self.members = [self.members[position] for position in positions]
        for module in self.modules():
            if isinstance(module, MemberLayer):
                module.set_members(self.batch_norm, self.activation)


class FusedMLP(FusedModel):
    def __init__(
        self, members: list[MemberSpec], in_features: int, num_classes: int, *, hidden: list[int]
    ) -> None:
        super().__init__(members)
        blocks: list[nn.Module] = []
        width_in = in_features
        for width in hidden:
            blocks += [
                FusedLinear(len(members), width_in, width * self.pieces),
                *self.norm_act(width),
            ]
            width_in = width
        blocks.append(FusedLinear(len(members), width_in, num_classes))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class FusedCNN(FusedModel):
    layout = CHANNELS

    def __init__(
        self,
        members: list[MemberSpec],
        in_channels: int,
        num_classes: int,
        *,
        channels: list[int],
        head_pool: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__(members)
        blocks: list[nn.Module] = []
        channels_in = in_channels
        height, width = input_size
        for channels_out in channels:
            blocks += [
                self.conv(channels_in, channels_out * self.pieces),
                *self.norm_act(channels_out),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            channels_in, height, width = channels_out, math.ceil(height / 2), math.ceil(width / 2)
        self.features = nn.Sequential(*blocks)
        # As models.cnn.CNN: each member's map pooled to at most head_pool x head_pool. Its channels
        # are a contiguous block, so flattening keeps each member's features together, in its own
        # order.
        pooled = (min(head_pool, height), min(head_pool, width))
        self.pool = nn.AdaptiveAvgPool2d(pooled)
        self.head = FusedLinear(len(members), channels_in * pooled[0] * pooled[1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(
            channels_to_rows(self.pool(self.features(x)).flatten(1), len(self.members))
        )


class FusedBasicBlock(nn.Module):
    """models.resnet.BasicBlock, fused: the same submodules under the same names."""

    def __init__(self, model: FusedModel, channels_in: int, width: int, *, stride: int) -> None:
        super().__init__()
        pieces = model.pieces
        self.residual = nn.Sequential(
            model.conv(channels_in, width * pieces, stride=stride),
            *model.norm_act(width),
            model.conv(width, width * pieces),
            model.norm(width),
        )
        if stride != 1 or channels_in != width * pieces:
            self.shortcut: nn.Module = nn.Sequential(
                model.conv(channels_in, width * pieces, kernel_size=1, stride=stride),
                model.norm(width),
            )
        else:
            self.shortcut = nn.Identity()
        self.act = model.act()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.residual(x) + self.shortcut(x))


class FusedResNet(FusedModel):
    layout = CHANNELS

    def __init__(
        self,
        members: list[MemberSpec],
        in_channels: int,
        num_classes: int,
        *,
        widths: list[int],
        blocks_per_stage: int,
    ) -> None:
        super().__init__(members)
        self.stem = nn.Sequential(
            self.conv(in_channels, widths[0] * self.pieces), *self.norm_act(widths[0])
        )
        stages: list[nn.Module] = []
        channels_in = widths[0]
        for index, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(FusedBasicBlock(self, channels_in, width, stride=stride))
                channels_in = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = FusedLinear(len(members), channels_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(
            channels_to_rows(self.pool(self.stages(self.stem(x))).flatten(1), len(self.members))
        )


# arch -> builder(members, input_shape (C, H, W), num_classes, **architecture options). An
# architecture missing here runs unfused (sweeps.driver.planning.fusion says so before the sweep
# starts).
FUSED_ARCHITECTURES: dict[str, Callable[..., FusedModel]] = {
    "mlp": lambda members, shape, classes, **options: FusedMLP(
        members, math.prod(shape), classes, **options
    ),
    "cnn": lambda members, shape, classes, **options: FusedCNN(
        members, shape[0], classes, input_size=tuple(shape[1:]), **options
    ),
    "resnet": lambda members, shape, classes, **options: FusedResNet(
        members, shape[0], classes, **options
    ),
}


def build_fused_model(
    settings: TrialSettings, members: list[MemberSpec], data: SplitData[ArrayT]
) -> FusedModel:
    """The group's model, each member's weights copied from the solo model its trial would build."""
    try:
        builder = FUSED_ARCHITECTURES[settings.arch]
    except KeyError:
        raise ValueError(
            f"architecture {settings.arch!r} cannot be fused; fusable: "
            f"{sorted(FUSED_ARCHITECTURES)}"
        ) from None
    fused = builder(members, data.input_shape, data.num_classes, **settings.model_options)
    for m, member in enumerate(members):
        torch.manual_seed(member.model_seed)  # as build_trial_state seeds the solo trial
        load_member(fused, m, build_trial_model(settings, member.params, data))
    return fused


def load_member(fused: FusedModel, m: int, solo: nn.Module) -> None:
    """Copy solo model `solo` into member m of `fused`, module by module under the same names."""
    solo_modules = dict(solo.named_modules())
    for name, module in fused.named_modules():
        if isinstance(module, MemberLayer):
            module.load_member(m, solo_modules[name])
