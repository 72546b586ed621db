"""Training diagnostics from the lecture: update/weight ratios, activation statistics, alerts.

Plain PyTorch, no Ray and no MLflow: the training loop calls these, and what they
measure travels to the driver inside each epoch's report.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from models.activations import ACTIVATIONS
from sweeps.alerts import alert_summary
from sweeps.trial_settings import DiagnosticsSettings

HINTS = {
    "too_high": "learning rate is likely too high",
    "too_low": "learning rate is likely too low",
    "nonfinite": "training diverged (NaN or inf): lower the learning rate or add batch norm",
}
HISTOGRAM_BINS = 40
PROBE_EXAMPLES = 128
HISTOGRAM_EXAMPLES = 32  # a histogram's shape needs far fewer values than the statistics


@dataclass(frozen=True)
class Alert:
    parameter: str
    value: float
    step: int
    direction: str  # too_high | too_low | nonfinite
    hint: str

    def summary(self) -> str:
        return alert_summary(asdict(self))


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
        self.normalized = normalized_weights(model) & set(self.names)
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


def normalized_weights(model: nn.Module) -> set[str]:
    """The weights of the convs and linear layers that batch norm directly follows (`layers.0.weight`).

    Batch norm divides their output by its own scale, so the loss does not change when
    the weight grows or shrinks: its update/weight ratio is an angle per step that
    weight decay and the learning rate settle between them, not the lecture's signal
    of a learning rate too high or too low. Found in registration order, which is the
    order of the forward pass in every model here and in torchvision's."""
    leaves = [(name, module) for name, module in model.named_modules() if not list(module.children())]
    found = set()
    for (name, module), (_, following) in zip(leaves, leaves[1:]):
        width = getattr(module, "out_channels", getattr(module, "out_features", None))
        if isinstance(module, (nn.Conv2d, nn.Linear)) and isinstance(following, nn.modules.batchnorm._BatchNorm) and following.num_features == width:
            found.add(f"{name}.weight")
    return found


class AlertTracker:
    """Raises one alert per parameter and direction when a ratio stays outside the band.

    Not while training warms up (the ratio spikes in the first steps of every healthy
    trial), and not for weights batch norm makes scale-free (`normalized`): their
    ratios are still measured and logged; a NaN or inf alerts whatever the weight."""

    def __init__(self, settings: DiagnosticsSettings, *, normalized: set[str] = frozenset()) -> None:
        self.settings = settings
        self.normalized = normalized
        self._streaks: dict[tuple[str, str], int] = {}
        self.raised: set[tuple[str, str]] = set()

    def observe(self, ratios: dict[str, float], *, step: int, warm: bool = True) -> list[Alert]:
        """Alerts for the ratios measured at `step`; `warm` False while training warms up."""
        alerts = []
        for name, value in ratios.items():
            if not math.isfinite(value):
                alerts += self._raise(name, value, step, "nonfinite")
                continue
            if not warm or name in self.normalized:
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
        # Shallow on purpose: asdict() deep-copies every number, a cost paid each epoch.
        return {"update_ratios": self.update_ratios, "activations": self.activations, "histograms": self.histograms, "alerts": self.alerts}


def activation_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The hidden activation modules by name (e.g. `layers.2`), in forward order."""
    kinds = tuple(ACTIVATIONS.values())
    return {name: module for name, module in model.named_modules() if isinstance(module, kinds)}


class ActivationProbe:
    """Mean, std, dead and saturated fractions of every hidden activation on a fixed probe batch.

    Runs in training mode (batch norm normalizes with the batch, as in training)
    and restores every buffer afterwards, so probing changes nothing. Layers and
    buffers are found once: a probe runs every epoch.
    """

    def __init__(self, model: nn.Module, probe: torch.Tensor) -> None:
        self.model = model
        self.probe = probe
        self.layers = activation_layers(model)
        self.buffers = list(model.buffers())

    @torch.no_grad()
    def measure(self, *, with_histograms: bool) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
        outputs = probe_layer_outputs(self.model, self.layers, self.buffers, lambda: self.model(self.probe))
        names = list(outputs)
        if not names:
            return {}, {}
        # One stacked tensor and one host transfer for every layer's four numbers.
        rows = torch.stack([_activation_stats(outputs[name], type(self.layers[name])) for name in names]).tolist()
        stats = {name: dict(zip(ACTIVATION_STATS, row)) for name, row in zip(names, rows)}
        histograms = _histograms({name: outputs[name][:HISTOGRAM_EXAMPLES] for name in names}) if with_histograms else {}
        return stats, histograms


ACTIVATION_STATS = ("act_mean", "act_std", "act_dead_frac", "act_saturated_frac")


def _activation_stats(output: torch.Tensor, kind: type[nn.Module]) -> torch.Tensor:
    output = output.float()
    dead = (output.flatten(1) == 0).all(dim=0).float().mean()
    if kind is ACTIVATIONS["tanh"]:
        saturated = (output.abs() > 0.99).float().mean()
    elif kind is ACTIVATIONS["sigmoid"]:
        saturated = ((output < 0.01) | (output > 0.99)).float().mean()
    else:
        saturated = torch.zeros((), device=output.device)
    return torch.stack([output.mean(), output.std(), dead, saturated])


def _histograms(outputs: dict[str, torch.Tensor]) -> dict[str, Any]:
    """HISTOGRAM_BINS equal bins between each layer's min and max, every layer in one bincount."""
    values = [output.detach().float().flatten() for output in outputs.values()]
    values = [torch.where(torch.isfinite(value), value, torch.nan) for value in values]
    lows = torch.stack([value.nan_to_num(nan=torch.inf).min() for value in values])
    highs = torch.stack([value.nan_to_num(nan=-torch.inf).max() for value in values])
    widths = (highs - lows).clamp_min(1e-12)
    bins = [
        ((value - low) / width * HISTOGRAM_BINS).clamp(0, HISTOGRAM_BINS - 1).nan_to_num(nan=-1).long()
        for value, low, width in zip(values, lows, widths)
    ]
    offset_bins = torch.cat([torch.where(index >= 0, index + layer * HISTOGRAM_BINS, -1) for layer, index in enumerate(bins)])
    counts = torch.bincount(offset_bins[offset_bins >= 0], minlength=len(values) * HISTOGRAM_BINS).view(len(values), HISTOGRAM_BINS)
    histograms = {}
    for name, low, high, row in zip(outputs, lows.tolist(), highs.tolist(), counts.tolist()):
        finite = math.isfinite(low) and math.isfinite(high)
        histograms[name] = {"low": low, "high": high, "counts": row} if finite else {"low": 0.0, "high": 0.0, "counts": []}
    return histograms


class TrialDiagnostics:
    """Everything a trial measures, driven by the training loop's step and epoch hooks."""

    def __init__(self, model: nn.Module, probe: torch.Tensor, settings: DiagnosticsSettings, *, start_step: int = 0) -> None:
        self.probe = ActivationProbe(model, probe[:PROBE_EXAMPLES])
        self.settings = settings
        self.ratios = UpdateRatioMonitor(model, every_n_steps=settings.every_n_steps)
        self.alerts = AlertTracker(settings, normalized=self.ratios.normalized)
        self.step = start_step  # global optimizer steps so far (non-zero when resuming)
        self.epoch_began_at = start_step
        self.first_epoch_over = start_step > 0
        self.stop_reason: str | None = None
        self.pending = EpochDiagnostics()
        if start_step == 0:
            self._probe_into(self.pending)  # step 0: the activations at initialization

    def before_step(self) -> bool:
        """Count an optimizer step about to be taken; True if it is measured (then call after_step)."""
        self.step += 1
        measured = self.ratios.due(self.step)
        if measured:
            self.ratios.before_step()
        return measured

    def after_step(self, loss: torch.Tensor) -> bool:
        """Record the measured step just taken; True when an alert says the trial should stop."""
        ratios = self.ratios.after_step()
        self.pending.update_ratios.append((self.step, ratios))
        warm = self.first_epoch_over and self.step > self.settings.warmup_steps
        raised = self.alerts.observe(ratios, step=self.step, warm=warm) + self.alerts.observe_loss(loss.item(), step=self.step)
        self.pending.add_alerts(raised)
        stopping = next((alert for alert in raised if self.alerts.should_stop(alert)), None)
        if stopping is not None:
            self.stop_reason = stopping.summary()
        return stopping is not None

    def end_epoch(self, epoch: int, train_loss: float) -> dict[str, Any]:
        """This epoch's measurements for the report, with the activations after it where due."""
        self.pending.add_alerts(self.alerts.observe_loss(train_loss, step=self.step))
        ending = epoch in self.settings.histogram_epochs or self.stop_reason is not None
        # A probe is a fixed cost an epoch: on epochs of a few steps it would cost more than
        # the update ratios measured every_n_steps, and tell little more than a sparser one.
        # Due when the epoch passed a multiple of the cadence: a resumed trial probes where
        # the uninterrupted one did.
        every = self.settings.activations_every_n_steps
        if ending or self.step // every > self.epoch_began_at // every:
            self._probe_into(self.pending, with_histograms=ending)
        self.epoch_began_at = self.step
        self.first_epoch_over = True
        report, self.pending = self.pending.as_report(), EpochDiagnostics()
        return report

    def _probe_into(self, epoch: EpochDiagnostics, *, with_histograms: bool = True) -> None:
        stats, histograms = self.probe.measure(with_histograms=with_histograms)
        epoch.activations.append((self.step, stats))
        if with_histograms:
            epoch.histograms.append({"step": self.step, "layers": histograms})


def probe_layer_outputs(model: nn.Module, layers: dict[str, nn.Module], buffers: list[torch.Tensor], forward: Callable[[], Any]) -> dict[str, torch.Tensor]:
    """Each of `layers`' outputs during `forward()`, run in training mode (batch norm normalizes
    with the batch, as in training) with every buffer restored afterwards: probing changes nothing."""
    saved = [buffer.clone() for buffer in buffers]
    was_training = model.training
    outputs: dict[str, torch.Tensor] = {}
    # Hooks only for the probe's forward: a module with hooks leaves PyTorch's fast call path.
    hooks = [
        module.register_forward_hook(lambda _module, _inputs, output, name=name: outputs.__setitem__(name, output.detach()))
        for name, module in layers.items()
    ]
    try:
        if not was_training:  # switching walks every module: only when needed
            model.train()
        forward()
    finally:
        for hook in hooks:
            hook.remove()
        if not was_training:
            model.eval()
        for buffer, value in zip(buffers, saved):
            buffer.copy_(value)
    return outputs
