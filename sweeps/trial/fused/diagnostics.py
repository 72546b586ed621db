"""The lecture's diagnostics for every member of a fused group, as each member's solo trial measures them.

Update/weight ratios per member and layer across the real optimizer step, activation
statistics and histograms per member on the same fixed probe batch, and one alert
tracker per member: reports carry the solo names and numbers, so nothing downstream
tells a member from a trial. Each measurement is one computation for the whole group.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from models.activations import ACTIVATIONS
from sweeps.trial.diagnostics import (
    ACTIVATION_STATS,
    HISTOGRAM_EXAMPLES,
    PROBE_EXAMPLES,
    AlertTracker,
    EpochDiagnostics,
    _histograms,
    probe_layer_outputs,
)
from sweeps.trial.fused.layers import (
    ROWS,
    FusedConv2d,
    FusedLinear,
    MemberActivation,
    MemberBatchNorm,
)
from sweeps.trial.fused.model import FusedModel
from sweeps.trial_settings import DiagnosticsSettings


def normalized_fused_weights(model: FusedModel) -> set[str]:
    """The fused weights batch norm directly follows, for the members that have batch norm: as
    sweeps.trial.diagnostics.normalized_weights finds them in a solo model, under the same names."""
    leaves = [(name, module) for name, module in model.named_modules() if not list(module.children())]
    return {
        f"{name}.weight"
        for (name, module), (_, following) in zip(leaves, leaves[1:])
        if isinstance(module, (FusedLinear, FusedConv2d)) and isinstance(following, MemberBatchNorm)
    }


class GroupDiagnostics:
    """Everything each member of a group measures, driven by the group's step and epoch hooks."""

    def __init__(self, model: FusedModel, probe: Tensor, settings: DiagnosticsSettings, *, start_step: int = 0) -> None:
        self.model = model
        self.probe = probe[:PROBE_EXAMPLES]
        self.settings = settings
        self.step = start_step  # global optimizer steps so far, the same for every member
        self.epoch_began_at = start_step
        self.first_epoch_over = start_step > 0  # as TrialDiagnostics: no update-ratio alert while training warms up
        normalized = normalized_fused_weights(model)
        self.alerts = {
            member.key: AlertTracker(settings, normalized=normalized if member.params["batch_norm"] else frozenset()) for member in model.members
        }
        self.stop_reasons: dict[str, str] = {}
        self.pending = {member.key: EpochDiagnostics() for member in model.members}
        self._before: list[Tensor] | None = None
        self.bind()
        if start_step == 0:
            self._probe_into(set(self.pending), histograms_of=set(self.pending))  # step 0: the activations at initialization

    def bind(self) -> None:
        """Find the model's weights and activation layers again (after members left, they are new tensors)."""
        # A solo weight matrix or conv kernel has 2 or more dimensions; its fused tensor has one more.
        named = [(name, param) for name, param in self.model.named_parameters() if param.requires_grad and param.ndim >= 3]
        self.names = [name for name, _ in named]
        self.weights = [param for _, param in named]
        self.layers = {name: module for name, module in self.model.named_modules() if isinstance(module, MemberActivation)}
        self.buffers = list(self.model.buffers())
        self.pending = {member.key: self.pending.get(member.key, EpochDiagnostics()) for member in self.model.members}

    def before_step(self) -> bool:
        """Count a step about to be taken; True if it is measured (then call after_step)."""
        self.step += 1
        measured = bool(self.weights) and self.step % self.settings.every_n_steps == 0
        if measured:
            self._before = [weight.detach().clone() for weight in self.weights]
        return measured

    @torch.no_grad()
    def after_step(self, losses: Tensor) -> list[int]:
        """Record the measured step; the positions of members whose alert says they must stop now."""
        before, self._before = self._before, None
        deltas = torch._foreach_sub([weight.detach() for weight in self.weights], before)
        update_norms = torch.stack([delta.flatten(1).norm(dim=1) for delta in deltas])
        weight_norms = torch.stack([weight.flatten(1).norm(dim=1) for weight in before])
        ratios, member_losses = (update_norms / weight_norms).t().tolist(), losses.tolist()  # one host sync
        stopping = []
        for position, member in enumerate(self.model.members):
            if member.key in self.stop_reasons:
                continue  # stopped earlier this epoch: it waits, frozen, for the epoch's end
            member_ratios = dict(zip(self.names, ratios[position]))
            self.pending[member.key].update_ratios.append((self.step, member_ratios))
            tracker = self.alerts[member.key]
            warm = self.first_epoch_over and self.step > self.settings.warmup_steps
            raised = tracker.observe(member_ratios, step=self.step, warm=warm) + tracker.observe_loss(member_losses[position], step=self.step)
            self.pending[member.key].add_alerts(raised)
            stop = next((alert for alert in raised if tracker.should_stop(alert)), None)
            if stop is not None:
                self.stop_reasons[member.key] = stop.summary()
                stopping.append(position)
        return stopping

    def end_epoch(self, epoch: int, train_losses: dict[str, float]) -> dict[str, dict[str, Any]]:
        """Each member's report for this epoch, with the activations after it where its solo trial takes them."""
        for key, loss in train_losses.items():
            self.pending[key].add_alerts(self.alerts[key].observe_loss(loss, step=self.step))
        every = self.settings.activations_every_n_steps
        due = self.step // every > self.epoch_began_at // every
        ending = {key for key in self.pending if epoch in self.settings.histogram_epochs or key in self.stop_reasons}
        probed = set(self.pending) if due else ending
        if probed:
            self._probe_into(probed, histograms_of=ending)
        self.epoch_began_at = self.step
        self.first_epoch_over = True
        reports = {key: pending.as_report() for key, pending in self.pending.items()}
        self.pending = {key: EpochDiagnostics() for key in self.pending}
        return reports

    def _probe_into(self, keys: set[str], *, histograms_of: set[str]) -> None:
        stats, histograms = self.measure(with_histograms=bool(histograms_of))
        for member in self.model.members:
            if member.key not in keys:
                continue
            self.pending[member.key].activations.append((self.step, stats[member.key]))
            if member.key in histograms_of:
                self.pending[member.key].histograms.append({"step": self.step, "layers": histograms[member.key]})

    @torch.no_grad()
    def measure(self, *, with_histograms: bool) -> tuple[dict[str, dict], dict[str, dict]]:
        """Per member: {layer: statistics}, and {layer: histogram} when asked; batch norm buffers restored."""
        outputs = self._probe_outputs()
        members = self.model.members
        if not outputs:
            return {member.key: {} for member in members}, {member.key: {} for member in members}
        kinds = [ACTIVATIONS[member.params["activation"]] for member in members]
        rows = torch.stack([member_activation_stats(output, kinds) for output in outputs.values()]).tolist()  # (layers, M, 4)
        stats = {
            member.key: {name: dict(zip(ACTIVATION_STATS, rows[layer][m])) for layer, name in enumerate(outputs)} for m, member in enumerate(members)
        }
        histograms = {}
        if with_histograms:
            histograms = {member.key: _histograms({name: output[m, :HISTOGRAM_EXAMPLES] for name, output in outputs.items()}) for m, member in enumerate(members)}
        return stats, histograms

    def _probe_outputs(self) -> dict[str, Tensor]:
        """Every activation layer's output on the probe batch, as (M, B, features) per member."""
        outputs = probe_layer_outputs(self.model, self.layers, self.buffers, lambda: self.model(self.model.shared(self.probe)))
        members = len(self.model.members)
        if self.model.layout == ROWS:
            return outputs
        # (B, M*C, H, W): member m's channels are its block, as (M, B, C*H*W).
        return {name: output.view(output.shape[0], members, -1).transpose(0, 1) for name, output in outputs.items()}


def member_activation_stats(output: Tensor, kinds: list[type]) -> Tensor:
    """(M, 4): mean, std, dead and saturated fractions of each member's (B, features) activations,
    as sweeps.trial.diagnostics computes them for one trial."""
    output = output.float()
    flat = output.flatten(2)
    mean = flat.mean(dim=(1, 2))
    std = flat.std(dim=(1, 2))
    dead = (flat == 0).all(dim=1).float().mean(dim=1)
    tanh_saturated = (flat.abs() > 0.99).float().mean(dim=(1, 2))
    sigmoid_saturated = ((flat < 0.01) | (flat > 0.99)).float().mean(dim=(1, 2))
    choose = torch.tensor([0 if kind is ACTIVATIONS["tanh"] else 1 if kind is ACTIVATIONS["sigmoid"] else 2 for kind in kinds], device=output.device)
    saturated = torch.stack([tanh_saturated, sigmoid_saturated, torch.zeros_like(mean)]).gather(0, choose.unsqueeze(0)).squeeze(0)
    return torch.stack([mean, std, dead, saturated], dim=1)
