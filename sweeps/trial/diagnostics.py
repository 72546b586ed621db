"""The lecture's diagnostics as a trial runs them: when to measure (trial/measurements.py
says what), the alerts a measurement raises, and what each epoch reports.

One Diagnostics serves a solo trial (a model of one member) and a fused group alike, driven
by the training loop's step and epoch hooks. Plain PyTorch, no Ray and no MLflow: what it
measures travels to the driver inside each epoch's report.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor

from sweeps.alerts import alert_summary
from sweeps.trial.measurements import MeasuredModel, measure_activations, update_ratios
from sweeps.trial_settings import DiagnosticsSettings

HINTS = {
    "too_high": "learning rate is likely too high",
    "too_low": "learning rate is likely too low",
    "nonfinite": "training diverged (NaN or inf): lower the learning rate or add batch norm",
}


@dataclass(frozen=True)
class Alert:
    parameter: str
    value: float
    step: int
    direction: str  # too_high | too_low | nonfinite
    hint: str

    def summary(self) -> str:
        return alert_summary(asdict(self))


class AlertTracker:
    """Raises one alert per parameter and direction when a ratio stays outside the band.

    Not while training warms up (the ratio spikes in the first steps of every healthy
    trial), and not for weights batch norm makes scale-free (`normalized`): their
    ratios are still measured and logged; a NaN or inf alerts whatever the weight."""

    def __init__(
        self, settings: DiagnosticsSettings, *, normalized: Collection[str] = frozenset()
    ) -> None:
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
            for direction, outside in (
                ("too_high", value > self.settings.high),
                ("too_low", value < self.settings.low),
            ):
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
        return [
            Alert(
                parameter=name, value=value, step=step, direction=direction, hint=HINTS[direction]
            )
        ]

    def should_stop(self, alert: Alert) -> bool:
        stop_on = self.settings.stop_on
        return (
            stop_on == "any"
            or stop_on == alert.direction
            or (stop_on is not None and alert.direction == "nonfinite")
        )


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
        return {
            "update_ratios": self.update_ratios,
            "activations": self.activations,
            "histograms": self.histograms,
            "alerts": self.alerts,
        }


class Diagnostics:
    """Everything each member of a model measures (one member for a solo trial), driven by the
    loop's step and epoch hooks: a member's report carries the names and numbers its solo trial
    would, so nothing downstream tells a member from a trial."""

    def __init__(
        self,
        model: MeasuredModel,
        probe: Tensor,
        settings: DiagnosticsSettings,
        *,
        start_step: int = 0,
    ) -> None:
        self.model = model
        self.probe = probe
        self.settings = settings
        # global optimizer steps so far (non-zero when resuming), the same for every member
        self.step = start_step
        self.epoch_began_at = start_step
        self.first_epoch_over = start_step > 0  # no update-ratio alert while training warms up
        normalized = dict(zip(model.members, model.normalized(), strict=True))
        self.alerts = {
            key: AlertTracker(settings, normalized=normalized[key]) for key in model.members
        }
        self.stop_reasons: dict[str, str] = {}
        self.pending: dict[str, EpochDiagnostics] = {}
        self._before: list[Tensor] | None = None
        self.bind()
        if start_step == 0:
            # step 0: at initialization
            self._probe_into(set(self.pending), histograms_of=set(self.pending))

    def bind(self) -> None:
        """Find the model's members and weights again (after members left a group, they are new
        tensors)."""
        named = self.model.weights()
        self.names = [name for name, _ in named]
        self.weights = [weight for _, weight in named]
        self.pending = {
            key: self.pending.get(key, EpochDiagnostics()) for key in self.model.members
        }

    def before_step(self) -> bool:
        """Count an optimizer step about to be taken; True if it is measured (then call
        after_step)."""
        self.step += 1
        measured = bool(self.weights) and self.step % self.settings.every_n_steps == 0
        if measured:
            self._before = [weight.detach().clone() for weight in self.weights]
        return measured

    def after_step(self, losses: Tensor) -> list[int]:
        """Record the measured step just taken (`losses`: each member's); the positions of the
        members whose alert says they must stop now."""
        before, self._before = self._before, None
        assert before is not None, "after_step without a measured before_step"
        ratios, member_losses = update_ratios(before, self.weights), losses.tolist()
        warm = self.first_epoch_over and self.step > self.settings.warmup_steps
        stopping = []
        for position, key in enumerate(self.model.members):
            if key in self.stop_reasons:
                continue  # stopped earlier this epoch: it waits, frozen, for the epoch's end
            member_ratios = dict(zip(self.names, ratios[position], strict=True))
            self.pending[key].update_ratios.append((self.step, member_ratios))
            tracker = self.alerts[key]
            raised = tracker.observe(member_ratios, step=self.step, warm=warm)
            raised += tracker.observe_loss(member_losses[position], step=self.step)
            self.pending[key].add_alerts(raised)
            stop = next((alert for alert in raised if tracker.should_stop(alert)), None)
            if stop is not None:
                self.stop_reasons[key] = stop.summary()
                stopping.append(position)
        return stopping

    def end_epoch(self, epoch: int, train_losses: dict[str, float]) -> dict[str, dict[str, Any]]:
        """Each member's measurements for this epoch's report, with the activations after it where
        due."""
        for key, loss in train_losses.items():
            self.pending[key].add_alerts(self.alerts[key].observe_loss(loss, step=self.step))
        # A probe is a fixed cost an epoch: on epochs of a few steps it would cost more than
        # the update ratios measured every_n_steps, and tell little more than a sparser one.
        # Due when the epoch passed a multiple of the cadence: a resumed trial probes where
        # the uninterrupted one did; always at an epoch a member can end at.
        every = self.settings.activations_every_n_steps
        due = self.step // every > self.epoch_began_at // every
        ending = {
            key
            for key in self.pending
            if epoch in self.settings.histogram_epochs or key in self.stop_reasons
        }
        probed = set(self.pending) if due else ending
        if probed:
            self._probe_into(probed, histograms_of=ending)
        self.epoch_began_at = self.step
        self.first_epoch_over = True
        reports = {key: pending.as_report() for key, pending in self.pending.items()}
        self.pending = {key: EpochDiagnostics() for key in self.pending}
        return reports

    def _probe_into(self, keys: set[str], *, histograms_of: set[str]) -> None:
        stats, histograms = measure_activations(
            self.model, self.probe, with_histograms=bool(histograms_of)
        )
        for key in self.model.members:
            if key not in keys:
                continue
            self.pending[key].activations.append((self.step, stats[key]))
            if key in histograms_of:
                self.pending[key].histograms.append({"step": self.step, "layers": histograms[key]})
