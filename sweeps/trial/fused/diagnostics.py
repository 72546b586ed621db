"""What the diagnostics see of a fused group's model: each member's weights and activations under
the names its solo model has, so every member measures as its solo trial (trial/diagnostics.py)."""

from __future__ import annotations

from torch import Tensor, nn

from models.activations import ACTIVATIONS
from sweeps.trial.fused.layers import (
    ROWS,
    FusedConv2d,
    FusedLinear,
    MemberActivation,
    MemberBatchNorm,
)
from sweeps.trial.fused.model import FusedModel
from sweeps.trial.measurements import probe_layer_outputs


def normalized_fused_weights(model: FusedModel) -> set[str]:
    """The fused weights batch norm directly follows, for the members that have batch norm: as
    sweeps.trial.measurements.normalized_weights finds them in a solo model, under the same
    names."""
    leaves = [
        (name, module) for name, module in model.named_modules() if not list(module.children())
    ]
    return {
        f"{name}.weight"
        for (name, module), (_, following) in zip(leaves, leaves[1:], strict=False)
        if isinstance(module, (FusedLinear, FusedConv2d)) and isinstance(following, MemberBatchNorm)
    }


class MeasuredGroup:
    """A fused model as the diagnostics measure it: every tensor already has the member dimension
    first."""

    def __init__(self, model: FusedModel) -> None:
        self.model = model

    @property
    def members(self) -> list[str]:
        return [member.key for member in self.model.members]

    def weights(self) -> list[tuple[str, Tensor]]:
        # A solo weight matrix or conv kernel has 2 or more dimensions; its fused tensor has one
        # more.
        named = self.model.named_parameters()
        return [(name, param) for name, param in named if param.requires_grad and param.ndim >= 3]

    def normalized(self) -> list[set[str]]:
        normalized = normalized_fused_weights(self.model)
        return [
            normalized if member.params["batch_norm"] else set() for member in self.model.members
        ]

    def probe_outputs(self, probe: Tensor) -> dict[str, tuple[Tensor, list[type[nn.Module]]]]:
        model = self.model
        layers = {
            name: module
            for name, module in model.named_modules()
            if isinstance(module, MemberActivation)
        }
        outputs = probe_layer_outputs(
            model, layers, list(model.buffers()), lambda: model(model.shared(probe))
        )
        kinds = [ACTIVATIONS[member.params["activation"]] for member in model.members]
        if model.layout == ROWS:
            return {name: (output, kinds) for name, output in outputs.items()}
        # (B, M*C, H, W): member m's channels are its block, as (M, B, C*H*W).
        members = len(model.members)
        return {
            name: (output.view(output.shape[0], members, -1).transpose(0, 1), kinds)
            for name, output in outputs.items()
        }
