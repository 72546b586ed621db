"""What a trial measures of its model, the lecture's diagnostics: update/weight ratios across a
real optimizer step, and activation statistics and histograms on a fixed probe batch.

Every measurement works on tensors with a leading member dimension: a solo trial is a model of
one member (SoloModel), a fused group one of several (trial/fused/diagnostics.py), so both
measure with the same code and report the same names and numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from models.activations import ACTIVATIONS

HISTOGRAM_BINS = 40
PROBE_EXAMPLES = 128
HISTOGRAM_EXAMPLES = 32  # a histogram's shape needs far fewer values than the statistics
ACTIVATION_STATS = ("act_mean", "act_std", "act_dead_frac", "act_saturated_frac")
Histogram = dict[str, Any]  # {"low", "high", "counts"}


class MeasuredModel(Protocol):
    """What the diagnostics see of a model: its members and, for each, the weights the update
    ratio is about and the outputs of its activation layers."""

    @property
    def members(self) -> list[str]:
        """The members' keys, in the order of the member dimension."""
        ...

    def weights(self) -> list[tuple[str, Tensor]]:
        """(name, tensor with the member dimension first) of every weight matrix and conv kernel
        that trains."""
        ...

    def normalized(self) -> list[set[str]]:
        """Per member: the weights batch norm directly follows (scale-free, see
        normalized_weights)."""
        ...

    def probe_outputs(self, probe: Tensor) -> dict[str, tuple[Tensor, list[type[nn.Module]]]]:
        """Each activation layer's output on `probe` as (members, examples, ...), and each member's
        activation there; run in training mode with every buffer restored."""
        ...


class SoloModel:
    """A solo trial's model, as a model of one member."""

    def __init__(self, model: nn.Module, key: str) -> None:
        self.model = model
        self.key = key
        self.layers = activation_layers(model)
        self.buffers = list(model.buffers())  # found once: a probe runs every few epochs

    @property
    def members(self) -> list[str]:
        return [self.key]

    def weights(self) -> list[tuple[str, Tensor]]:
        # Weight matrices and conv kernels that train; biases and norm scales are not what the rule
        # is about.
        named = self.model.named_parameters()
        return [
            (name, param.unsqueeze(0))
            for name, param in named
            if param.requires_grad and param.ndim >= 2
        ]

    def normalized(self) -> list[set[str]]:
        return [normalized_weights(self.model)]

    def probe_outputs(self, probe: Tensor) -> dict[str, tuple[Tensor, list[type[nn.Module]]]]:
        outputs = probe_layer_outputs(
            self.model, self.layers, self.buffers, lambda: self.model(probe)
        )
        return {
            name: (output.unsqueeze(0), [type(self.layers[name])])
            for name, output in outputs.items()
        }


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The hidden activation modules by name (e.g. `layers.2`), in forward order."""
    kinds = tuple(ACTIVATIONS.values())
    return {name: module for name, module in model.named_modules() if isinstance(module, kinds)}


def normalized_weights(model: nn.Module) -> set[str]:
    """The weights of the convs and linear layers that batch norm directly follows
    (`layers.0.weight`).

    Batch norm divides their output by its own scale, so the loss does not change when
    the weight grows or shrinks: its update/weight ratio is an angle per step that
    weight decay and the learning rate settle between them, not the lecture's signal
    of a learning rate too high or too low. Found in registration order, which is the
    order of the forward pass in every model here and in torchvision's."""
    leaves = [
        (name, module) for name, module in model.named_modules() if not list(module.children())
    ]
    found = set()
    for (name, module), (_, following) in zip(leaves, leaves[1:], strict=False):
        width = getattr(module, "out_channels", getattr(module, "out_features", None))
        is_weighted = isinstance(module, (nn.Conv2d, nn.Linear))
        if (
            is_weighted
            and isinstance(following, nn.modules.batchnorm._BatchNorm)
            and following.num_features == width
        ):
            found.add(f"{name}.weight")
    return found


@torch.no_grad()
def update_ratios(before: list[Tensor], after: list[Tensor]) -> list[list[float]]:
    """||W_after - W_before|| / ||W_before|| of each weight (member dimension first), per member:
    [member][weight]. Measuring the real change, not lr * grad, accounts for momentum, Adam and
    weight decay. One host sync for every member and weight."""
    deltas = torch._foreach_sub([weight.detach() for weight in after], before)
    update_norms = torch.stack([delta.flatten(1).norm(dim=1) for delta in deltas])
    weight_norms = torch.stack([weight.flatten(1).norm(dim=1) for weight in before])
    ratios: list[list[float]] = (update_norms / weight_norms).t().tolist()
    return ratios


def member_activation_stats(output: Tensor, kinds: list[type[nn.Module]]) -> Tensor:
    """(members, 4): the mean, std, dead and saturated fractions of each member's activations
    (members, examples, ...). A unit is dead when it is 0 for every example; saturated counts
    only for tanh and sigmoid."""
    flat = output.float().flatten(2)
    mean = flat.mean(dim=(1, 2))
    std = flat.std(dim=(1, 2))
    dead = (flat == 0).all(dim=1).float().mean(dim=1)
    tanh_saturated = (flat.abs() > 0.99).float().mean(dim=(1, 2))
    sigmoid_saturated = ((flat < 0.01) | (flat > 0.99)).float().mean(dim=(1, 2))
    which = [
        0 if kind is ACTIVATIONS["tanh"] else 1 if kind is ACTIVATIONS["sigmoid"] else 2
        for kind in kinds
    ]
    choose = torch.tensor(which, device=output.device)
    saturated = torch.stack([tanh_saturated, sigmoid_saturated, torch.zeros_like(mean)])
    return torch.stack(
        [mean, std, dead, saturated.gather(0, choose.unsqueeze(0)).squeeze(0)], dim=1
    )


@torch.no_grad()
def measure_activations(
    model: MeasuredModel, probe: Tensor, *, with_histograms: bool
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, Histogram]]]:
    """Per member: {layer: statistics}, and {layer: histogram} when asked."""
    outputs = model.probe_outputs(probe)
    members = model.members
    if not outputs:
        return {key: {} for key in members}, {key: {} for key in members}
    # One stacked tensor and one host transfer for every layer's and member's four numbers.
    rows = torch.stack(
        [member_activation_stats(output, kinds) for output, kinds in outputs.values()]
    ).tolist()
    stats = {
        key: {
            name: dict(zip(ACTIVATION_STATS, rows[layer][m], strict=True))
            for layer, name in enumerate(outputs)
        }
        for m, key in enumerate(members)
    }
    histograms: dict[str, dict[str, Histogram]] = {}
    if with_histograms:
        for m, key in enumerate(members):
            histograms[key] = layer_histograms(
                {name: output[m, :HISTOGRAM_EXAMPLES] for name, (output, _) in outputs.items()}
            )
    return stats, histograms


def layer_histograms(outputs: dict[str, Tensor]) -> dict[str, Histogram]:
    """HISTOGRAM_BINS equal bins between each layer's min and max, every layer in one bincount."""
    values = [output.detach().float().flatten() for output in outputs.values()]
    values = [torch.where(torch.isfinite(value), value, torch.nan) for value in values]
    lows = torch.stack([value.nan_to_num(nan=torch.inf).min() for value in values])
    highs = torch.stack([value.nan_to_num(nan=-torch.inf).max() for value in values])
    widths = (highs - lows).clamp_min(1e-12)
    bins = [
        ((value - low) / width * HISTOGRAM_BINS)
        .clamp(0, HISTOGRAM_BINS - 1)
        .nan_to_num(nan=-1)
        .long()
        for value, low, width in zip(values, lows, widths, strict=True)
    ]
    offset = torch.cat(
        [
            torch.where(index >= 0, index + layer * HISTOGRAM_BINS, -1)
            for layer, index in enumerate(bins)
        ]
    )
    counts = torch.bincount(offset[offset >= 0], minlength=len(values) * HISTOGRAM_BINS).view(
        len(values), HISTOGRAM_BINS
    )
    histograms = {}
    for name, low, high, row in zip(
        outputs, lows.tolist(), highs.tolist(), counts.tolist(), strict=True
    ):
        finite = math.isfinite(low) and math.isfinite(high)
        histograms[name] = (
            {"low": low, "high": high, "counts": row}
            if finite
            else {"low": 0.0, "high": 0.0, "counts": []}
        )
    return histograms


def probe_layer_outputs(
    model: nn.Module,
    layers: Mapping[str, nn.Module],
    buffers: list[Tensor],
    forward: Callable[[], Tensor],
) -> dict[str, Tensor]:
    """Each of `layers`' outputs during `forward()`, run in training mode (batch norm normalizes
    with the batch, as in training) with every buffer restored afterwards: probing changes
    nothing."""
    saved = [buffer.clone() for buffer in buffers]
    was_training = model.training
    outputs: dict[str, Tensor] = {}

    def keep(name: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        return lambda _module, _inputs, output: outputs.__setitem__(name, output.detach())

    # Hooks only for the probe's forward: a module with hooks leaves PyTorch's fast call path.
    hooks = [module.register_forward_hook(keep(name)) for name, module in layers.items()]
    try:
        if not was_training:  # switching walks every module: only when needed
            model.train()
        forward()
    finally:
        for hook in hooks:
            hook.remove()
        if not was_training:
            model.eval()
        for buffer, value in zip(buffers, saved, strict=True):
            buffer.copy_(value)
    return outputs
