"""How a sweep's record is closed, however the sweep ends: no parent run is left RUNNING
by a driver that has exited.

- finished: counts, best trial, FINISHED (FAILED if no trial succeeded); the journal finished.
- interrupted by a signal: KILLED with sweep.state = interrupted; the journal stays
  unfinished, so `sweep resume` carries on.
- failed (the sweep itself, not a trial): FAILED with the one-line reason in sweep.failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sweeps.driver.cluster import storage
from sweeps.driver.planning.plan import SweepPlan
from sweeps.driver.record.journal import SweepJournal
from sweeps.driver.record.spool import Spool
from sweeps.driver.running.interruption import SweepInterrupted
from sweeps.driver.running.outcome import SweepOutcome, summarize_results
from sweeps.errors import first_line

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from sweeps.driver.tracking.writer import MlflowWriter

Echo = Callable[[str], None]
TUNE_STATE_FILE = "tuner.pkl"  # Tune writes it when a run starts; Tuner.restore needs it


def _writer(journal: SweepJournal, echo: Echo, *, patience_s: float) -> MlflowWriter:
    # A writer of its own, after the trial logger's has closed: both keep the same spool.
    from sweeps.driver.tracking.writer import MlflowWriter

    spool = Spool(journal.experiment_path)
    return MlflowWriter(journal.tracking_uri, spool, journal, patience_s=patience_s, warn=echo)


@contextlib.contextmanager
def on_failure(journal: SweepJournal, *, echo: Echo, patience_s: float) -> Iterator[None]:
    """Close the parent run if the sweep stops with an exception: KILLED for a signal, FAILED
    otherwise."""
    from sweeps.driver.tracking import sweep_run

    try:
        yield
    except SweepInterrupted as interrupted:
        writer = _writer(journal, echo, patience_s=patience_s)
        sweep_run.mark_sweep_interrupted(
            writer, journal.parent_run_id, signal_name=str(interrupted)
        )
        writer.close()
        if not storage.exists(storage.join(journal.experiment_path, TUNE_STATE_FILE)):
            # Stopped before Tune saved an experiment: nothing for `sweep resume` to go on from.
            journal.finished = True
            journal.save()
        raise
    except BaseException as error:
        writer = _writer(journal, echo, patience_s=patience_s)
        sweep_run.mark_sweep_failed(writer, journal.parent_run_id, reason=first_line(error))
        writer.close()
        raise


def close_finished(
    plan: SweepPlan, journal: SweepJournal, results: ResultGrid, *, echo: Echo
) -> SweepOutcome:
    """Every trial ended: record how the sweep went on its parent run and finish the journal."""
    from sweeps.driver.tracking import sweep_run

    journal = SweepJournal.load(journal.experiment_path)  # as the trial logger left it
    outcome = _outcome(plan, journal, results)
    writer = _writer(journal, echo, patience_s=plan.config.mlflow.patience_s)
    sweep_run.close_sweep_run(
        writer,
        journal.parent_run_id,
        metric=outcome.metric,
        best_value=outcome.best_value,
        best_run_id=outcome.best_run_id,
        status_counts=dict(outcome.statuses),
        alerts=outcome.alerts,
    )
    outcome.unsent = writer.close()
    if outcome.best_run_id is not None:
        # created by now, unless the store is away
        outcome.best_run_id = writer.run_id(outcome.best_run_id)
    journal.finished = True
    journal.save()
    return outcome


def close_interrupted(
    plan: SweepPlan, journal: SweepJournal, *, signum: int, echo: Echo
) -> SweepOutcome:
    """A signal stopped training: the parent run KILLED as interrupted, the journal left
    unfinished."""
    import signal
    from collections import Counter

    from sweeps.driver.tracking import sweep_run

    journal = SweepJournal.load(journal.experiment_path)
    # Tune counts a stopped trial as ended; the trial logger's record says how each really ended.
    outcome = SweepOutcome.of_journal(
        journal,
        experiment_name=plan.config.experiment_name,
        metric=plan.config.search.metric,
        statuses=Counter(
            entry.get("status", "interrupted") for entry in journal.trial_runs.values()
        ),
        interrupted_by=signum,
        not_started=plan.config.search.num_samples - len(journal.trial_runs),
    )
    writer = _writer(journal, echo, patience_s=plan.config.mlflow.patience_s)
    sweep_run.mark_sweep_interrupted(
        writer, journal.parent_run_id, signal_name=signal.Signals(signum).name
    )
    outcome.unsent = writer.close()
    return outcome


def _outcome(plan: SweepPlan, journal: SweepJournal, results: ResultGrid) -> SweepOutcome:
    if plan.fusion is not None:  # Tune's trials are groups: the members are the sweep's trials
        from sweeps.driver.running.fused_sweep import summarize_members

        return summarize_members(results, journal, plan)
    search = plan.config.search
    return summarize_results(
        results,
        journal,
        experiment_name=plan.config.experiment_name,
        metric=search.metric,
        mode=search.mode,
        epochs=plan.config.train.epochs,
    )
