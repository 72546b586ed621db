"""The fused layers: each holds every member's copy of one solo layer, stacked on a leading member
dimension.

Two layouts, after HFTA (Wang et al., MLSys 2021). Linear layers work on rows, (M, B, C):
member m's batch is x[m] and a linear layer is one batched matmul. Convolutions work on
channels, (B, M*C, H, W): member m's channels are the m-th contiguous block, so a conv
is a grouped conv (groups=M), batch norm is one batch norm over M*C channels, and
pooling and residual additions are unchanged. Every parameter and buffer has the member
dimension first, so a member leaves the group by indexing them (FusedModel.keep).

Members may differ in activation and batch norm: a group is ordered so that each
distinct choice is a contiguous run of members, and each run is one kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.activations import get_activation
from sweeps.trial.fused.members import runs

ROWS, CHANNELS = "rows", "channels"
BATCH_NORM_MOMENTUM, BATCH_NORM_EPS = (
    0.1,
    1e-5,
)  # PyTorch's BatchNorm defaults, as the solo models use


class MemberLayer(nn.Module):
    """A fused layer: `load_member` copies member m's solo layer in; `set_members` follows a change
    of members."""

    def load_member(self, m: int, solo: nn.Module) -> None:
        raise NotImplementedError

    def set_members(self, batch_norm: list[bool], activation: list[str]) -> None:
        """The members' batch norm and activation choices, in member order (after some left)."""


class FusedLinear(MemberLayer):
    """M linear layers as one batched matmul on (M, B, in). The weight is kept as (M, in, out),
    the transpose of nn.Linear's, so its gradient comes out of the matmul in the weight's own
    layout."""

    def __init__(self, members: int, width_in: int, width_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, width_in, width_out))
        self.bias = nn.Parameter(torch.zeros(members, width_out))

    def load_member(self, m: int, solo: nn.Module) -> None:
        assert isinstance(solo, nn.Linear), f"member {m}'s solo layer is {type(solo).__name__}"
        self.weight.data[m] = solo.weight.detach().t()
        self.bias.data[m] = solo.bias.detach()

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)


class FusedConv2d(MemberLayer):
    """M convolutions as one grouped convolution on (B, M*C, H, W). A member with batch norm
    after its convs has no conv bias (as its solo model): its bias row is masked to zero, and so is
    its gradient."""

    bias_mask: Tensor  # a buffer, (M, 1): 0 for the members whose bias is masked

    def __init__(
        self,
        members: int,
        channels_in: int,
        channels_out: int,
        *,
        kernel_size: int,
        stride: int,
        batch_norm: list[bool],
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.empty(members, channels_out, channels_in, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(members, channels_out))
        self.stride, self.padding = stride, kernel_size // 2
        self.set_members(batch_norm, [])

    def set_members(self, batch_norm: list[bool], activation: list[str]) -> None:
        # Decided here, once, not per step: reading a mask's values would sync with a GPU.
        self.biased = [not normed for normed in batch_norm]
        mask = torch.tensor(self.biased, dtype=self.bias.dtype, device=self.bias.device).unsqueeze(
            1
        )
        self.register_buffer("bias_mask", mask, persistent=False)

    def load_member(self, m: int, solo: nn.Module) -> None:
        assert isinstance(solo, nn.Conv2d), f"member {m}'s solo layer is {type(solo).__name__}"
        self.weight.data[m] = solo.weight.detach()
        self.bias.data[m] = solo.bias.detach() if solo.bias is not None else 0.0

    def forward(self, x: Tensor) -> Tensor:
        if all(self.biased):
            bias = self.bias.flatten()
        elif any(self.biased):
            bias = (self.bias * self.bias_mask).flatten()
        else:
            bias = None
        return F.conv2d(
            x,
            self.weight.flatten(0, 1),
            bias,
            stride=self.stride,
            padding=self.padding,
            groups=self.weight.shape[0],
        )


class MemberBatchNorm(MemberLayer):
    """Each member's batch norm, or none: one F.batch_norm per run of members that have it.

    Running statistics, weight and bias are (M, C); members without batch norm leave theirs unused.
    """

    running_mean: Tensor  # buffers, (M, C)
    running_var: Tensor

    def __init__(self, members: int, width: int, *, layout: str, batch_norm: list[bool]) -> None:
        super().__init__()
        self.layout = layout
        self.weight = nn.Parameter(torch.ones(members, width))
        self.bias = nn.Parameter(torch.zeros(members, width))
        self.register_buffer("running_mean", torch.zeros(members, width))
        self.register_buffer("running_var", torch.ones(members, width))
        self.set_members(batch_norm, [])

    def set_members(self, batch_norm: list[bool], activation: list[str]) -> None:
        self.segments = [(stop - start, normed) for start, stop, normed in runs(batch_norm)]

    def load_member(self, m: int, solo: nn.Module) -> None:
        if isinstance(solo, nn.modules.batchnorm._BatchNorm):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(self, name).data[m] = getattr(solo, name).detach()

    def forward(self, x: Tensor) -> Tensor:
        if not any(normed for _, normed in self.segments):
            return x
        dim = 0 if self.layout == ROWS else 1
        if len(self.segments) == 1:
            return self._normalize(x, self.weight, self.bias, self.running_mean, self.running_var)
        # split, not slices: its backward is one cat, where each slice's would be a zero-filled
        # copy.
        sizes = [count for count, _ in self.segments]
        width = x.shape[dim] // len(self.weight)
        pieces = zip(
            x.split([count * width for count in sizes], dim=dim),
            *(
                tensor.split(sizes)
                for tensor in (self.weight, self.bias, self.running_mean, self.running_var)
            ),
            strict=False,
        )
        parts = [
            self._normalize(*piece) if normed else piece[0]
            for piece, (_, normed) in zip(pieces, self.segments, strict=True)
        ]
        return torch.cat(parts, dim=dim)

    def _normalize(
        self, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor
    ) -> Tensor:
        if self.layout == ROWS:  # (k, B, C) -> (B, k*C): batch norm wants the channels in dim 1
            count, batch, width = x.shape
            x = x.transpose(0, 1).reshape(batch, count * width)
        # The statistics are views of the buffers: batch norm updates them in place.
        out = F.batch_norm(
            x,
            running_mean.view(-1),
            running_var.view(-1),
            weight.reshape(-1),
            bias.reshape(-1),
            self.training,
            BATCH_NORM_MOMENTUM,
            BATCH_NORM_EPS,
        )
        return out.view(batch, count, width).transpose(0, 1) if self.layout == ROWS else out


class MemberActivation(MemberLayer):
    """Each member's activation: one call per run of members that share it. Maxout halves
    the width per member in either layout (its pieces are neighbours within a member's block)."""

    def __init__(self, *, layout: str, activation: list[str]) -> None:
        super().__init__()
        self.layout = layout
        self.set_members([], activation)

    def set_members(self, batch_norm: list[bool], activation: list[str]) -> None:
        self.activation = list(activation)
        # Plain attributes, not submodules: the activations hold no parameters.
        self.runs = [
            (stop - start, get_activation(name)()) for start, stop, name in runs(activation)
        ]

    def load_member(self, m: int, solo: nn.Module) -> None:
        pass  # nothing to copy: the choice itself came with the member

    def forward(self, x: Tensor) -> Tensor:
        members, dim = len(self.activation), 0 if self.layout == ROWS else 1
        if len(self.runs) == 1:
            return self._activate(self.runs[0][1], x)
        # split, not slices: its backward is one cat, where each slice's would be a zero-filled
        # copy.
        width = x.shape[dim] // members
        parts = x.split([count * width for count, _ in self.runs], dim=dim)
        return torch.cat(
            [self._activate(act, part) for (_, act), part in zip(self.runs, parts, strict=True)],
            dim=dim,
        )

    def _activate(self, act: nn.Module, x: Tensor) -> Tensor:
        if self.layout == ROWS and getattr(act, "pieces", 1) > 1:  # maxout pairs units along dim 1
            count, batch, width = x.shape
            return act(x.reshape(count * batch, width)).view(count, batch, -1)
        return act(x)


def channels_to_rows(x: Tensor, members: int) -> Tensor:
    """(B, M*C) features of a conv net as (M, B, C) rows for its linear head."""
    batch = x.shape[0]
    return x.view(batch, members, -1).transpose(0, 1)
