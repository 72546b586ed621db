"""How a sweep went, from Tune's results: counts by status, the best trial, errors and alerts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweeps.driver.record.journal import SweepJournal
from sweeps.errors import first_line

if TYPE_CHECKING:
    from ray.tune import Result, ResultGrid

from sweeps.trial_status import SUCCEEDED, trial_status


@dataclass
class SweepOutcome:
    tracking_uri: str
    experiment_name: str
    experiment_id: str
    parent_run_id: str
    experiment_path: str
    metric: str
    statuses: Counter = field(default_factory=Counter)
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    best_run_id: str | None = None
    errors: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    unsent: int = 0  # MLflow writes still waiting in the spool when the sweep ended
    interrupted_by: int | None = None  # the signal that stopped the sweep, if one did
    not_started: int = 0  # trials an interruption kept from starting
    sweep_name: str = ""  # the sweep file's name: the refined file's name comes from it

    @classmethod
    def of_journal(
        cls, journal: SweepJournal, *, experiment_name: str, metric: str, **counts: Any
    ) -> SweepOutcome:
        """An outcome that knows its sweep's runs, store and name from the journal; `counts` the
        rest."""
        return cls(
            tracking_uri=journal.tracking_uri,
            experiment_name=experiment_name,
            experiment_id=journal.experiment_id,
            parent_run_id=journal.parent_run_id,
            experiment_path=journal.experiment_path,
            metric=metric,
            alerts=journal.alerts,
            sweep_name=journal.sweep_name,
            **counts,
        )

    @property
    def succeeded(self) -> int:
        return sum(self.statuses[status] for status in SUCCEEDED)


def summarize_results(
    results: ResultGrid,
    journal: SweepJournal,
    *,
    experiment_name: str,
    metric: str,
    mode: str,
    epochs: int,
) -> SweepOutcome:
    """The outcome of a finished Tune run (a ResultGrid), with run ids from the journal."""
    outcome = SweepOutcome.of_journal(journal, experiment_name=experiment_name, metric=metric)
    for result in each_result(results):
        status = trial_status(result.metrics, epochs=epochs, errored=result.error is not None)
        outcome.statuses[status] += 1
        if result.error is not None:
            outcome.errors.append(first_line(result.error))
    if outcome.succeeded:
        best = results.get_best_result(
            metric=metric, mode=mode, scope="all", filter_nan_and_inf=True
        )
        assert best.metrics is not None and best.metrics_dataframe is not None  # it reported
        history = best.metrics_dataframe[metric]
        outcome.best_value = float(history.max() if mode == "max" else history.min())
        outcome.best_params = dict(best.config or {})
        outcome.best_run_id = journal.run_of(best.metrics["trial_id"])
    return outcome


def each_result(results: ResultGrid) -> list[Result]:
    """Every trial's result (a ResultGrid is a sequence its type does not declare iterable)."""
    return [results[index] for index in range(len(results))]
