"""Training diagnostics from the lecture: update/weight ratios, activation statistics, alerts.

Plain PyTorch, no Ray and no MLflow: the training loop calls these, and what they
measure travels to the driver inside each epoch's report.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from models.activations import ACTIVATIONS

HINTS = {
    "too_high": "learning rate is likely too high",
    "too_low": "learning rate is likely too low",
    "nonfinite": "training diverged (NaN or inf): lower the learning rate or add batch norm",
}
HISTOGRAM_BINS = 40
PROBE_EXAMPLES = 256


@dataclass(frozen=True)
class DiagnosticsSettings:
    enabled: bool = True
    every_n_steps: int = 20
    low: float = 1e-4
    high: float = 1e-2
    patience: int = 3
    stop_on: str | None = None  # too_high | too_low | any


@dataclass(frozen=True)
class Alert:
    parameter: str
    value: float
    step: int
    direction: str  # too_high | too_low | nonfinite
    hint: str

    def summary(self) -> str:
        return f"{self.direction}: {self.parameter} {self.value:.1e} at step {self.step}"


class UpdateRatioMonitor:
    """||W_after - W_before|| / ||W_before|| per weight tensor, across a real optimizer.step().

    Measuring the actual change (not lr * grad) accounts for momentum, Adam and
    weight decay. Only every `every_n_steps` steps pays for a copy of the weights.
    """

    def __init__(self, model: nn.Module, *, every_n_steps: int) -> None:
        self.every_n_steps = every_n_steps
        # Weight matrices and conv kernels that train; biases and norm scales are not what the rule is about.
        named = [(name, param) for name, param in model.named_parameters() if param.requires_grad and param.ndim >= 2]
        self.names = [name for name, _ in named]
        self.weights = [param for _, param in named]
        self._before: list[torch.Tensor] | None = None

    def due(self, step: int) -> bool:
        return bool(self.weights) and step % self.every_n_steps == 0

    def before_step(self) -> None:
        self._before = [weight.detach().clone() for weight in self.weights]

    @torch.no_grad()
    def after_step(self) -> dict[str, float]:
        """The ratios of the step just taken; one host sync for all layers."""
        before, self._before = self._before, None
        deltas = torch._foreach_sub([weight.detach() for weight in self.weights], before)
        update_norms = torch.stack(torch._foreach_norm(deltas))
        weight_norms = torch.stack(torch._foreach_norm(before))
        ratios = (update_norms / weight_norms).tolist()
        return dict(zip(self.names, ratios))


class AlertTracker:
    """Raises one alert per parameter and direction when a ratio stays outside the band."""

    def __init__(self, settings: DiagnosticsSettings) -> None:
        self.settings = settings
        self._streaks: dict[tuple[str, str], int] = {}
        self.raised: set[tuple[str, str]] = set()

    def observe(self, ratios: dict[str, float], *, step: int) -> list[Alert]:
        alerts = []
        for name, value in ratios.items():
            if not math.isfinite(value):
                alerts += self._raise(name, value, step, "nonfinite")
                continue
            for direction, outside in (("too_high", value > self.settings.high), ("too_low", value < self.settings.low)):
                key = (name, direction)
                self._streaks[key] = self._streaks.get(key, 0) + 1 if outside else 0
                if self._streaks[key] >= self.settings.patience:
                    alerts += self._raise(name, value, step, direction)
        return alerts

    def observe_loss(self, loss: float, *, step: int) -> list[Alert]:
        return [] if math.isfinite(loss) else self._raise("loss", loss, step, "nonfinite")

    def _raise(self, name: str, value: float, step: int, direction: str) -> list[Alert]:
        if (name, direction) in self.raised:
            return []
        self.raised.add((name, direction))
        return [Alert(parameter=name, value=value, step=step, direction=direction, hint=HINTS[direction])]

    def should_stop(self, alert: Alert) -> bool:
        stop_on = self.settings.stop_on
        return stop_on == "any" or stop_on == alert.direction or (stop_on is not None and alert.direction == "nonfinite")


@dataclass
class EpochDiagnostics:
    """What one epoch measured, sent with its report."""

    update_ratios: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    activations: list[tuple[int, dict[str, dict[str, float]]]] = field(default_factory=list)
    histograms: list[dict[str, Any]] = field(default_factory=list)  # snapshots: {"step", "layers"}
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def add_alerts(self, alerts: list[Alert]) -> None:
        self.alerts += [asdict(alert) for alert in alerts]

    def as_report(self) -> dict[str, Any]:
        return asdict(self)


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The hidden activation modules by name (e.g. `layers.2`), in forward order."""
    kinds = tuple(ACTIVATIONS.values())
    return {name: module for name, module in model.named_modules() if isinstance(module, kinds)}


@torch.no_grad()
def probe_activations(model: nn.Module, probe: torch.Tensor, *, with_histograms: bool) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Mean, std, dead and saturated fractions of every hidden activation on a fixed probe batch.

    Runs in training mode (batch norm normalizes with the batch, as in training)
    and restores every buffer afterwards, so probing changes nothing.
    """
    layers = activation_layers(model)
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(lambda _module, _inputs, output, name=name: outputs.__setitem__(name, output.detach()))
        for name, module in layers.items()
    ]
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    was_training = model.training
    try:
        model.train()
        model(probe)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    stats, histograms = {}, {}
    for name, output in outputs.items():
        kind = type(layers[name])
        per_unit = output.flatten(1)
        stats[name] = {
            "act_mean": output.mean().item(),
            "act_std": output.std().item(),
            "act_dead_frac": (per_unit == 0).all(dim=0).float().mean().item(),
            "act_saturated_frac": _saturated_fraction(output, kind),
        }
        if with_histograms:
            histograms[name] = _histogram(output)
    return stats, histograms


def _saturated_fraction(output: torch.Tensor, kind: type[nn.Module]) -> float:
    if kind is ACTIVATIONS["tanh"]:
        return (output.abs() > 0.99).float().mean().item()
    if kind is ACTIVATIONS["sigmoid"]:
        return ((output < 0.01) | (output > 0.99)).float().mean().item()
    return 0.0


def _histogram(output: torch.Tensor) -> dict[str, Any]:
    values = output.flatten().float()
    low, high = values.min().item(), values.max().item()
    if not (math.isfinite(low) and math.isfinite(high)):
        return {"low": 0.0, "high": 0.0, "counts": []}
    if high <= low:
        high = low + 1e-6
    return {"low": low, "high": high, "counts": torch.histc(values, bins=HISTOGRAM_BINS, min=low, max=high).tolist()}


def ratio_median(ratios: dict[str, float]) -> float:
    return statistics.median(ratios.values())


class TrialDiagnostics:
    """Everything a trial measures, driven by the training loop's step and epoch hooks."""

    def __init__(self, model: nn.Module, probe: torch.Tensor, settings: DiagnosticsSettings, *, start_step: int = 0) -> None:
        self.model = model
        self.probe = probe[:PROBE_EXAMPLES]
        self.settings = settings
        self.ratios = UpdateRatioMonitor(model, every_n_steps=settings.every_n_steps)
        self.alerts = AlertTracker(settings)
        self.step = start_step  # global optimizer steps so far (non-zero when resuming)
        self.stop_reason: str | None = None
        self.pending = EpochDiagnostics()
        self._measuring = False
        if start_step == 0:
            self._probe_into(self.pending)  # step 0: the activations at initialization

    def before_step(self) -> None:
        self.step += 1
        self._measuring = self.ratios.due(self.step)
        if self._measuring:
            self.ratios.before_step()

    def after_step(self, loss: torch.Tensor) -> bool:
        """Record a measured step; True when an alert says the trial should stop."""
        if not self._measuring:
            return False
        ratios = self.ratios.after_step()
        self.pending.update_ratios.append((self.step, ratios))
        raised = self.alerts.observe(ratios, step=self.step) + self.alerts.observe_loss(loss.item(), step=self.step)
        self.pending.add_alerts(raised)
        stopping = next((alert for alert in raised if self.alerts.should_stop(alert)), None)
        if stopping is not None:
            self.stop_reason = stopping.summary()
        return stopping is not None

    def end_epoch(self, train_loss: float) -> dict[str, Any]:
        """This epoch's measurements for the report, with the activations after it."""
        self.pending.add_alerts(self.alerts.observe_loss(train_loss, step=self.step))
        self._probe_into(self.pending)
        report, self.pending = self.pending.as_report(), EpochDiagnostics()
        return report

    def _probe_into(self, epoch: EpochDiagnostics) -> None:
        stats, histograms = probe_activations(self.model, self.probe, with_histograms=True)
        epoch.activations.append((self.step, stats))
        epoch.histograms.append({"step": self.step, "layers": histograms})
