"""Run, resume and sync a sweep: each a few named steps, read top to bottom."""
from __future__ import annotations

import time
from typing import Any, Callable

from sweeps.driver import ray_cluster, storage
from sweeps.driver.config import ConfigError, SweepConfig, validate_sweep
from sweeps.driver.journal import JournalError, Spool, SweepJournal, find_resumable
from sweeps.driver.outcome import SweepOutcome, summarize_results
from sweeps.driver.plan import SweepPlan, load_sweep_data, plan_sweep
from sweeps.driver.sweep_file import load_yaml
from sweeps.driver.tracking import store
from sweeps.errors import SweepError

Echo = Callable[[str], None]


def run_sweep(
    config: SweepConfig,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    resume: str = "never",
    verbose: bool = False,
    live: bool = False,
    echo: Echo = print,
) -> SweepOutcome:
    """Run the whole sweep and return how it went; raises SweepError before any trial when it cannot start.

    `tracking_uri` is the --tracking-uri flag (store.resolve_tracking_uri says what wins).
    With resume="auto", an unfinished experiment of this sweep under storage.path is
    continued instead (what a restarted Kubernetes job does).
    """
    storage_path = storage.resolve_storage_path(config.storage.path)
    if resume == "auto" and (unfinished := find_resumable(storage_path, config.name)) is not None:
        echo(f"resuming the unfinished sweep in {unfinished}")
        return resume_sweep(unfinished, tracking_uri=tracking_uri, address=address, verbose=verbose, live=live, echo=echo)
    store.check_no_credentials(tracking_uri, where="--tracking-uri")
    plan = plan_sweep(config)
    if config.train.fuse != "off":
        echo(plan.fusion_note)  # fused or not, and why
    # What we can check without writing anything comes first: bad input must leave nothing behind.
    ray_cluster.check_ray_reachable(address)
    storage.check_storage_writable(storage_path)
    prepare = lambda: _load_data_and_reach_store(plan, tracking_uri)  # noqa: E731
    with ray_cluster.ray_alongside(address, verbose=verbose, meanwhile=prepare) as (data, resolved_uri):
        storage.check_storage_reaches_every_node(storage_path, shared=config.storage.shared, nodes=ray_cluster.alive_node_count())
        journal = _open_sweep(plan, resolved_uri, storage_path)
        from sweeps.driver.tuner import new_tuner

        tuner = new_tuner(plan, journal, data, echo=echo, live=live, verbose=verbose)
        return _train_and_close(plan, journal, tuner, echo=echo)


def resume_sweep(
    experiment_path: str,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    verbose: bool = False,
    live: bool = False,
    echo: Echo = print,
) -> SweepOutcome:
    """Continue an interrupted sweep with Tune's restore, in the same MLflow runs; first send what an outage kept back."""
    experiment_path = storage.resolve_storage_path(experiment_path)
    journal, config = _load_unfinished(experiment_path)
    ray_cluster.check_ray_reachable(address)
    store.check_no_credentials(tracking_uri, where="--tracking-uri")
    journal.tracking_uri = store.resolve_tracking_uri(tracking_uri, configured=journal.tracking_uri)
    journal.save()
    store.check_reachable(journal.tracking_uri)
    unsent = _send_kept_writes(journal)
    if unsent:
        raise SweepError(f"MLflow at {journal.tracking_uri} refused {unsent} kept writes; see {experiment_path}/mlflow-spool.jsonl")
    from sweeps.driver.tracking.sweep_run import reopen_sweep_run

    reopen_sweep_run(journal.tracking_uri, journal.parent_run_id)
    plan = plan_sweep(config)
    with ray_cluster.ray_alongside(address, verbose=verbose, meanwhile=lambda: load_sweep_data(config)) as data:
        from sweeps.driver.tuner import restored_tuner

        journal = SweepJournal.load(experiment_path)
        return _train_and_close(plan, journal, restored_tuner(plan, journal, data), echo=echo)


def sync_sweep(experiment_path: str) -> tuple[str, int]:
    """Send the MLflow writes an outage kept with the experiment; returns the store and how many still wait."""
    journal = SweepJournal.load(experiment_path)
    store.check_reachable(journal.tracking_uri)
    return journal.tracking_uri, _send_kept_writes(journal)


def _send_kept_writes(journal: SweepJournal) -> int:
    from sweeps.driver.tracking.writer import MlflowWriter

    return MlflowWriter(journal.tracking_uri, Spool(journal.experiment_path), journal).close()


def _load_unfinished(experiment_path: str) -> tuple[SweepJournal, SweepConfig]:
    try:
        journal = SweepJournal.load(experiment_path)
        config = validate_sweep(load_yaml(journal.sweep_yaml), source=f"{experiment_path}/sweep.json")
    except (JournalError, ConfigError) as error:
        raise SweepError(str(error)) from None
    if journal.finished:
        raise SweepError(f"{experiment_path}: this sweep finished; start a new one with `sweep run`")
    return journal, config


def _load_data_and_reach_store(plan: SweepPlan, tracking_uri_flag: str | None) -> tuple[Any, str]:
    """What a sweep needs before its first trial, done while Ray starts."""
    if plan.config.diagnostics.enabled:
        # Pillow loads now, while Ray starts, not when the first trial's histogram figure
        # is drawn mid-sweep, where its import would hold the GIL against Tune's event loop.
        import sweeps.driver.histogram_figure  # noqa: F401

    data = load_sweep_data(plan.config)
    tracking_uri = store.resolve_tracking_uri(tracking_uri_flag, configured=plan.config.mlflow.tracking_uri)
    store.check_reachable(tracking_uri)
    return data, tracking_uri


def _open_sweep(plan: SweepPlan, tracking_uri: str, storage_path: str) -> SweepJournal:
    """The sweep's MLflow parent run, and its journal beside Tune's experiment."""
    from sweeps.driver.tracking.sweep_run import open_sweep_run

    run_name = f"{plan.config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    experiment_id, parent_run_id = open_sweep_run(
        tracking_uri,
        experiment_name=plan.config.experiment_name,
        run_name=run_name,
        sweep_yaml=plan.sweep_yaml,
        params=plan.parent_params,
        refines=plan.config.refines,
    )
    journal = SweepJournal(
        experiment_path=storage.join(storage_path, run_name),
        sweep_name=plan.config.name,
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=parent_run_id,
        sweep_yaml=plan.sweep_yaml,
    )
    journal.save()
    return journal


def _train_and_close(plan: SweepPlan, journal: SweepJournal, tuner: Any, *, echo: Echo) -> SweepOutcome:
    """Train every trial, then record how the sweep went on its parent run and in the journal."""
    from sweeps.driver.tracking import sweep_run
    from sweeps.driver.tracking.writer import MlflowWriter

    try:
        results = tuner.fit()
    except BaseException:
        # A writer of its own once the trial logger's has closed: both keep the same spool.
        writer = MlflowWriter(journal.tracking_uri, Spool(journal.experiment_path), journal, warn=echo)
        sweep_run.abandon_sweep_run(writer, journal.parent_run_id)
        writer.close()
        raise
    journal = SweepJournal.load(journal.experiment_path)  # as the trial logger left it
    search = plan.config.search
    if plan.fusion is not None:
        from sweeps.driver.fused_sweep import summarize_members

        outcome = summarize_members(results, journal, plan)
    else:
        outcome = summarize_results(
            results, journal, experiment_name=plan.config.experiment_name, metric=search.metric, mode=search.mode, epochs=plan.config.train.epochs
        )
    writer = MlflowWriter(journal.tracking_uri, Spool(journal.experiment_path), journal, warn=echo)
    sweep_run.close_sweep_run(
        writer,
        journal.parent_run_id,
        metric=search.metric,
        best_value=outcome.best_value,
        best_run_id=outcome.best_run_id,
        status_counts=dict(outcome.statuses),
        alerts=journal.alerts,
    )
    outcome.unsent = writer.close()
    if outcome.best_run_id is not None:
        outcome.best_run_id = writer.run_id(outcome.best_run_id)  # created by now, unless the store is away
    journal.finished = True
    journal.save()
    return outcome
