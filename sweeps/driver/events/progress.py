"""Progress a person can read while a sweep runs.

On a terminal: a live status panel (rich) with one line printed above it per
finished trial. Elsewhere (CI logs, pipes): just those lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ray import tune

from sweeps.driver.running.startup import since_launch, stamp
from sweeps.run_names import trial_run_name
from sweeps.trial_status import trial_status

if TYPE_CHECKING:
    from rich.panel import Panel

    from sweeps.driver.events.member_events import SweepTrial


class ProgressPrinter(tune.Callback):
    """Counts trials by how they ended, tracks the best result so far, and shows both."""

    def __init__(
        self,
        *,
        num_samples: int,
        epochs: int,
        metric: str,
        mode: str,
        echo: Callable[[str], None],
        live: bool = False,
        sampled: tuple[str, ...] = (),
        notes: list[str] | None = None,
    ) -> None:
        self.num_samples = num_samples
        self.epochs = epochs
        self.metric = metric
        self.mode = mode
        self.echo = echo
        self.sampled = sampled  # the params a trial's name shows
        self.statuses: Counter[str] = Counter()
        self.running: set[str] = set()
        # the best value so far, and the name of its trial
        self.best: tuple[float, str] | None = None
        self.live = live
        self.notes = notes or []  # lines the live panel shows under its counts, e.g. what is cached
        self._panel: _LivePanel | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment; a live terminal display is not state.
        return self.__dict__ | {"_panel": None}

    @property
    def _live(self) -> _LivePanel | None:
        if self.live and self._panel is None:
            self._panel = _LivePanel(self)
        return self._panel

    def on_trial_start(
        self, iteration: int, trials: Sequence[SweepTrial], trial: SweepTrial, **info: Any
    ) -> None:
        self.running.add(trial.trial_id)
        self._refresh()

    def on_trial_result(
        self,
        iteration: int,
        trials: Sequence[SweepTrial],
        trial: SweepTrial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        value = result.get(self.metric)
        if value is not None and (
            self.best is None
            or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        ):
            self.best = (value, self.name(trial))
        self._refresh()

    def on_trial_complete(
        self, iteration: int, trials: Sequence[SweepTrial], trial: SweepTrial, **info: Any
    ) -> None:
        self._finished(trial, errored=False)

    def on_trial_error(
        self, iteration: int, trials: Sequence[SweepTrial], trial: SweepTrial, **info: Any
    ) -> None:
        self._finished(trial, errored=True)

    def on_experiment_end(self, trials: Sequence[SweepTrial], **info: Any) -> None:
        if self._panel is not None:
            self._panel.stop()

    def _finished(self, trial: SweepTrial, *, errored: bool) -> None:
        self.running.discard(trial.trial_id)
        status = trial_status(trial.last_result, epochs=self.epochs, errored=errored)
        self.statuses[status] += 1
        last = trial.last_result or {}
        value = last.get(self.metric)
        epochs = last.get("training_iteration", 0)
        result = f", {self.metric} {value:.4f}" if value is not None else ""
        # The trial's own numbers next to its name; the sweep's standing after a bar.
        line = stamp(
            f"{self.name(trial)}: {status.replace('_', ' ')} after {epochs} "
            f"epoch{'' if epochs == 1 else 's'}{result}"
        )
        if self._live is not None:
            self._live.print(line)
        else:
            self.echo(f"{line} | sweep: {self.counts()}, {self.best_text()}")

    def name(self, trial: SweepTrial) -> str:
        return trial_run_name(trial.trial_id, trial.config, self.sampled)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update()

    def elapsed(self) -> float:
        return since_launch()

    def counts(self) -> str:
        done = sum(self.statuses.values())
        by_status = ", ".join(
            f"{count} {status.replace('_', '-')}" for status, count in sorted(self.statuses.items())
        )
        return (
            f"{done}/{self.num_samples} done ({by_status or 'none yet'}), "
            f"{len(self.running)} running"
        )

    def best_text(self) -> str:
        if self.best is None:
            return f"best {self.metric} so far: -"
        value, name = self.best
        return f"best {self.metric} so far {value:.4f} ({name})"


class _LivePanel:
    """rich's Live display of a ProgressPrinter's counts, best result and elapsed time."""

    def __init__(self, progress: ProgressPrinter) -> None:
        from rich.console import Console
        from rich.live import Live

        self.progress = progress
        self.console = Console()
        # Live redraws what __rich__ returns four times a second, so the clock ticks between events.
        self.live = Live(self, console=self.console, refresh_per_second=4, transient=True)
        self.live.start()

    def __rich__(self) -> Panel:
        from rich.panel import Panel
        from rich.text import Text

        progress = self.progress
        text = Text()
        text.append(progress.counts() + "\n")
        text.append(progress.best_text() + "\n", style="bold green" if progress.best else "")
        for note in progress.notes:
            text.append(note + "\n", style="dim")
        text.append(f"{progress.elapsed():.0f} s since launch", style="dim")
        return Panel(text, title="sweep", expand=False)

    def update(self) -> None:
        self.live.refresh()

    def print(self, line: str) -> None:
        self.live.console.print(line, highlight=False)

    def stop(self) -> None:
        self.live.stop()
