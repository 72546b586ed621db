"""Progress a person can read while a sweep runs: one line per finished trial."""
from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable

from ray import tune

from sweeps.trial_params import format_params
from sweeps.trial_status import trial_status


class ProgressPrinter(tune.Callback):
    """Prints counts of finished/running trials and the best result so far."""

    def __init__(self, *, num_samples: int, epochs: int, metric: str, mode: str, echo: Callable[[str], None]) -> None:
        self.num_samples = num_samples
        self.epochs = epochs
        self.metric = metric
        self.mode = mode
        self.echo = echo
        self.started = time.monotonic()
        self.statuses: Counter[str] = Counter()
        self.running: set[str] = set()
        self.best: tuple[float, dict[str, Any]] | None = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if value is None:
            return
        if self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0]):
            self.best = (value, trial.config)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finished(trial, errored=True)

    def _finished(self, trial: Any, *, errored: bool) -> None:
        self.running.discard(trial.trial_id)
        status = trial_status(trial.last_result, epochs=self.epochs, errored=errored)
        self.statuses[status] += 1
        epochs_done = (trial.last_result or {}).get("training_iteration", 0)
        value = (trial.last_result or {}).get(self.metric)
        result = f"{self.metric} {value:.4f} " if value is not None else ""
        self.echo(
            f"[{time.monotonic() - self.started:6.1f}s] {sum(self.statuses.values())}/{self.num_samples} done, "
            f"{len(self.running)} running | {trial} {status} {result}after {epochs_done} epochs | {self._best_text()}"
        )

    def _best_text(self) -> str:
        if self.best is None:
            return f"best {self.metric} -"
        value, config = self.best
        return f"best {self.metric} {value:.4f} ({format_params(config)})"
