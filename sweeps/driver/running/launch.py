"""Run, resume and sync a sweep: each a few named steps, read top to bottom.

Every step that can refuse bad input comes before anything is written. From the
moment the parent run exists, the sweep's record is closed however it ends
(sweeps/driver/running/closing.py): finished, interrupted by a signal, or failed.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from sweeps.driver.cluster import ray_cluster, storage
from sweeps.driver.planning import feature_cache
from sweeps.driver.planning.plan import SweepPlan, load_sweep_data, plan_sweep
from sweeps.driver.record.driver_lock import hold_sweep
from sweeps.driver.record.journal import SweepJournal, find_resumable
from sweeps.driver.record.spool import Spool
from sweeps.driver.running import closing
from sweeps.driver.running.interruption import Interruption, stop_gracefully_on_signals
from sweeps.driver.running.outcome import SweepOutcome
from sweeps.driver.running.startup import announce
from sweeps.driver.sweep_file.reading import load_yaml
from sweeps.driver.sweep_file.schema import SweepConfig
from sweeps.driver.sweep_file.validation import validate_sweep
from sweeps.driver.tracking import store
from sweeps.errors import SweepError
from sweeps.trial.data import SplitData

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
    user_sweep_file: str | None = None,
) -> SweepOutcome:
    """Run the whole sweep and return how it went; raises SweepError before anything is
    written when it cannot start, and SweepInterrupted when a signal stops it before training.

    `tracking_uri` is the --tracking-uri flag (store.resolve_tracking_uri says what wins).
    With resume="auto", an unfinished experiment of this sweep under storage.path is
    continued instead (what a restarted Kubernetes job does). `user_sweep_file`, the file
    as the person wrote it (read now), is kept on the sweep's run for `sweep refine` to edit.
    """
    written = Path(user_sweep_file).read_text(encoding="utf-8") if user_sweep_file else None
    storage_path = storage.resolve_storage_path(config.storage.path)
    if resume == "auto" and (unfinished := find_resumable(storage_path, config.name)) is not None:
        echo(f"resuming the unfinished sweep in {unfinished}")
        outcome = resume_sweep(
            unfinished,
            tracking_uri=tracking_uri,
            address=address,
            verbose=verbose,
            live=live,
            echo=echo,
        )
    else:
        outcome = _run_new_sweep(
            config,
            storage_path,
            tracking_uri=tracking_uri,
            address=address,
            verbose=verbose,
            live=live,
            echo=echo,
        )
    if written is not None:
        _keep_user_sweep_file(outcome, written, source=str(user_sweep_file), echo=echo)
    return outcome


def _run_new_sweep(
    config: SweepConfig,
    storage_path: str,
    *,
    tracking_uri: str | None,
    address: str | None,
    verbose: bool,
    live: bool,
    echo: Echo,
) -> SweepOutcome:
    plan = plan_sweep(config)
    if config.train.fuse != "off":
        echo(plan.fusion_note)  # fused or not, and why
    # What we can check without writing anything comes first: bad input must leave nothing behind.
    store.check_sources(tracking_uri, configured=config.mlflow.tracking_uri)
    ray_cluster.check_ray_reachable(address)
    storage.check_storage_writable(storage_path)
    with stop_gracefully_on_signals(echo) as interruption:
        announce(
            echo,
            f"joining the Ray cluster at {address}" if address else "starting Ray on this machine",
        )
        prepare = partial(_load_data_and_reach_store, plan, tracking_uri, echo=echo)
        with ray_cluster.ray_alongside(address, verbose=verbose, meanwhile=prepare) as (
            data,
            resolved_uri,
        ):
            interruption.reclaim()
            announce(
                echo, f"Ray is up: {ray_cluster.alive_node_count()} node(s); the first trials start"
            )
            _check_the_cluster_can_run(config, storage_path)
            features = feature_cache.cache_frozen_features(
                config, plan.trial_settings, data, echo=echo
            )
            run_name = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            with contextlib.ExitStack() as held:
                with interruption.opening_the_sweep():
                    experiment_path = storage.new_experiment_folder(storage_path, run_name)
                    held.enter_context(hold_sweep(experiment_path, command="sweep run"))
                    journal = _open_sweep(plan, resolved_uri, experiment_path)
                    patience_s = config.mlflow.patience_s
                    held.enter_context(
                        closing.on_failure(journal, echo=echo, patience_s=patience_s)
                    )
                from sweeps.driver.running.tuner import new_tuner

                tuner = new_tuner(
                    plan, journal, data, echo=echo, live=live, verbose=verbose, features=features
                )
                return _train_and_close(plan, journal, tuner, interruption, echo=echo)


def _keep_user_sweep_file(outcome: SweepOutcome, written: str, *, source: str, echo: Echo) -> None:
    """The sweep file as written (comments and all) on the sweep's run, for `sweep refine` to
    edit."""
    from sweeps.driver.tracking.sweep_run import log_user_sweep_file

    if outcome.unsent:
        return  # MLflow is away; `sweep refine --from` takes the file instead
    try:
        log_user_sweep_file(outcome.tracking_uri, outcome.parent_run_id, written)
    except Exception as error:  # the sweep ran; this copy is a convenience for refine
        echo(
            f"note: the sweep file was not logged with the sweep ({error}); use sweep refine "
            f"--from {source}"
        )


def resume_sweep(
    experiment_path: str,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    verbose: bool = False,
    live: bool = False,
    echo: Echo = print,
) -> SweepOutcome:
    """Continue an interrupted sweep with Tune's restore, in the same MLflow runs; first send what
    an outage kept back."""
    store.check_no_credentials(tracking_uri, where="--tracking-uri")
    experiment_path = storage.resolve_storage_path(experiment_path)
    SweepJournal.load(experiment_path)  # a folder that holds a sweep, before its lock is taken
    with (
        stop_gracefully_on_signals(echo) as interruption,
        hold_sweep(experiment_path, command="sweep resume"),
    ):
        journal, config = _load_unfinished(experiment_path)
        ray_cluster.check_ray_reachable(address)
        journal.tracking_uri = _tracking_uri_of(journal, tracking_uri)
        store.check_reachable(journal.tracking_uri, create=False)
        unsent = _send_kept_writes(journal, echo=echo, patience_s=config.mlflow.patience_s)
        if unsent:
            raise SweepError(
                f"MLflow at {journal.tracking_uri} refused {unsent} kept writes; see "
                f"{experiment_path}/mlflow-spool.jsonl"
            )
        from sweeps.driver.tracking.sweep_run import reopen_sweep_run

        reopen_sweep_run(journal.tracking_uri, journal.parent_run_id)
        plan = plan_sweep(config)
        with closing.on_failure(journal, echo=echo, patience_s=config.mlflow.patience_s):
            with ray_cluster.ray_alongside(
                address, verbose=verbose, meanwhile=lambda: load_sweep_data(config)
            ) as data:
                interruption.reclaim()
                _check_the_cluster_can_run(config, None)
                from sweeps.driver.running.tuner import restored_tuner

                features = feature_cache.cache_frozen_features(
                    config, plan.trial_settings, data, echo=echo
                )
                return _train_and_close(
                    plan,
                    journal,
                    restored_tuner(plan, journal, data, features),
                    interruption,
                    echo=echo,
                )


def sync_sweep(experiment_path: str, *, echo: Echo = print) -> tuple[str, int]:
    """Send the MLflow writes an outage kept with the experiment; returns the store and how many
    still wait."""
    experiment_path = storage.resolve_storage_path(experiment_path)
    SweepJournal.load(experiment_path)  # a folder that holds a sweep, before its lock is taken
    with hold_sweep(experiment_path, command="sweep sync"):
        journal = SweepJournal.load(experiment_path)
        config = _config_of(journal)
        journal.tracking_uri = _tracking_uri_of(journal, None)
        store.check_reachable(journal.tracking_uri, create=False)
        unsent = _send_kept_writes(journal, echo=echo, patience_s=config.mlflow.patience_s)
        return journal.tracking_uri, unsent


def _tracking_uri_of(journal: SweepJournal, flag: str | None) -> str:
    """The store a sweep that ran goes on with, by the one rule: the journal is the sweep's own."""
    from sweeps.credentials import storable

    # as the file holds it (SweepJournal.load refuses one with credentials)
    stored = storable(journal.tracking_uri)
    return store.resolve_tracking_uri(
        flag, configured=stored, configured_in=f"{journal.experiment_path}/sweep.json: tracking_uri"
    )


def _send_kept_writes(journal: SweepJournal, *, echo: Echo, patience_s: float) -> int:
    from sweeps.driver.tracking.writer import MlflowWriter

    spool = Spool(journal.experiment_path)
    writer = MlflowWriter(journal.tracking_uri, spool, journal, patience_s=patience_s, warn=echo)
    return writer.close()


def _config_of(journal: SweepJournal) -> SweepConfig:
    """The sweep file a sweep ran with, as its journal keeps it."""
    source = f"{journal.experiment_path}/sweep.json"
    return validate_sweep(load_yaml(journal.sweep_yaml, source=source), source=source)


def _load_unfinished(experiment_path: str) -> tuple[SweepJournal, SweepConfig]:
    journal = SweepJournal.load(experiment_path)
    config = _config_of(journal)
    if journal.finished:
        raise SweepError(
            f"{experiment_path}: this sweep finished; start a new one with `sweep run`"
        )
    return journal, config


def _load_data_and_reach_store(
    plan: SweepPlan, tracking_flag: str | None, *, echo: Echo
) -> tuple[SplitData, str]:
    """What a sweep needs before its first trial, done while Ray starts: the data, and the
    MLflow store's URI, checked (importing MLflow takes seconds). A new sqlite store's tables
    are made when the sweep opens its parent run: bad input leaves no store behind."""
    if plan.config.diagnostics.enabled:
        # Pillow loads now, while Ray starts, not when the first trial's histogram figure
        # is drawn mid-sweep, where its import would hold the GIL against Tune's event loop.
        importlib.import_module("sweeps.driver.events.histogram_figure")

    announce(echo, f"loading the data: {plan.config.data.dataset}")
    data = load_sweep_data(plan.config)
    announce(
        echo,
        f"data ready: {len(data.train_y)} training and {len(data.val_y)} validation examples, "
        f"{data.num_classes} classes",
    )
    announce(echo, "opening the MLflow store")
    tracking_uri = store.resolve_tracking_uri(
        tracking_flag, configured=plan.config.mlflow.tracking_uri
    )
    store.check_reachable(tracking_uri, create=True)
    database = store.sqlite_path(tracking_uri)
    made = database is None or database.exists()
    announce(
        echo,
        f"MLflow store ready: {tracking_uri}" if made else f"MLflow store: a new one at {database}",
    )
    return data, tracking_uri


def _check_the_cluster_can_run(config: SweepConfig, storage_path: str | None) -> None:
    """What only the cluster can tell, asked before anything is written: resources some node
    has, and (for a new sweep) a storage path every node reaches."""
    gpus = config.resources.gpus_per_trial
    # `auto` asks for a share of a GPU only where the cluster has one: it can always be given.
    ray_cluster.check_resources_fit(
        cpus_per_trial=config.resources.cpus_per_trial,
        gpus_per_trial=0 if gpus == "auto" else float(gpus),
    )
    if storage_path is not None:
        storage.check_storage_reaches_every_node(
            storage_path, shared=config.storage.shared, nodes=ray_cluster.alive_node_count()
        )


def _open_sweep(plan: SweepPlan, tracking_uri: str, experiment_path: str) -> SweepJournal:
    """The sweep's MLflow parent run, and its journal beside Tune's experiment."""
    from sweeps.driver.tracking.sweep_run import open_sweep_run

    try:
        experiment_id, parent_run_id = open_sweep_run(
            tracking_uri,
            experiment_name=plan.config.experiment_name,
            run_name=experiment_path.rsplit("/", 1)[-1],
            sweep_yaml=plan.sweep_yaml,
            params=plan.parent_params,
            refines=plan.config.refines,
        )
    except BaseException:
        storage.remove_empty_folder(experiment_path)  # nothing of this sweep was recorded yet
        raise
    journal = SweepJournal(
        experiment_path=experiment_path,
        sweep_name=plan.config.name,
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=parent_run_id,
        sweep_yaml=plan.sweep_yaml,
    )
    with closing.on_failure(journal, echo=print, patience_s=plan.config.mlflow.patience_s):
        journal.save()
    return journal


def _train_and_close(
    plan: SweepPlan, journal: SweepJournal, tuner: Any, interruption: Interruption, *, echo: Echo
) -> SweepOutcome:
    """Train every trial, then record how the sweep went on its parent run and in the journal."""
    interruption.tune_running = True
    try:
        results = tuner.fit()
    finally:
        interruption.tune_running = False
    if interruption.signum is not None:
        return closing.close_interrupted(plan, journal, signum=interruption.signum, echo=echo)
    return closing.close_finished(plan, journal, results, echo=echo)
