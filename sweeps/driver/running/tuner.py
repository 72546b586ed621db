"""Ray Tune wiring: a sweep plan as a Tuner (new, or restored after the driver died).

Public Ray Tune API only; anything that reaches into Ray's internals is in ray_cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.search import BasicVariantGenerator

from sweeps.driver.events.member_events import MemberEvents
from sweeps.driver.events.progress import ProgressPrinter
from sweeps.driver.events.trial_runs import MlflowTrialLogger
from sweeps.driver.events.webhook import WebhookSender
from sweeps.driver.planning import fusion, gpu_share
from sweeps.driver.planning.feature_cache import SweepFeatures
from sweeps.driver.planning.plan import AshaSettings, SweepPlan
from sweeps.driver.record.journal import SweepJournal
from sweeps.driver.running import fused_sweep
from sweeps.driver.running.checkpoint_recovery import ResumeFromNewestCheckpoint
from sweeps.driver.sweep_file.distributions import build_search_space, sampled_names
from sweeps.trial.data import SplitData
from sweeps.trial.trainable import train_trial

if TYPE_CHECKING:
    from ray.tune.schedulers import ASHAScheduler

KEEP_CHECKPOINTS = 2  # per trial, newest first: enough to survive one torn write


def new_tuner(
    plan: SweepPlan,
    journal: SweepJournal,
    data: SplitData,
    *,
    echo: Callable[[str], None],
    live: bool,
    verbose: bool,
    features: SweepFeatures,
) -> tune.Tuner:
    config = plan.config
    storage_path, run_name = journal.experiment_path.rsplit("/", 1)
    # one Tune trial per group, early stopping per member in the groups
    fused = plan.fusion is not None
    return tune.Tuner(
        _trainable(plan, data, features),
        param_space=_param_space(plan),
        tune_config=tune.TuneConfig(
            metric=None if fused else config.search.metric,
            mode=None if fused else config.search.mode,
            num_samples=1 if fused else config.search.num_samples,
            search_alg=BasicVariantGenerator(
                random_state=config.search.seed, max_concurrent=config.search.max_concurrent
            ),
            scheduler=None if fused else _scheduler(plan.asha),
            # A trial reuses a finished trial's worker: no new process importing torch per
            # trial. run_training seeds and builds everything afresh, so nothing carries over.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=storage_path,
            callbacks=_callbacks(plan, journal, echo=echo, live=live, features=features),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
            failure_config=tune.FailureConfig(max_failures=config.search.max_failures),
            verbose=2 if verbose else 0,
        ),
    )


def restored_tuner(
    plan: SweepPlan,
    journal: SweepJournal,
    data: SplitData,
    features: SweepFeatures,
) -> tune.Tuner:
    """Tune brings back its trials, searcher and callbacks; the callbacks find their runs in the
    journal."""
    _prepare_tune()
    return tune.Tuner.restore(
        journal.experiment_path,
        _trainable(plan, data, features, resumed_from=journal.experiment_path),
        resume_unfinished=True,
        param_space=_param_space(plan),
    )


def _param_space(plan: SweepPlan) -> dict[str, Any]:
    return (
        build_search_space(plan.config.params)
        if plan.fusion is None
        else fusion.param_space(plan.fusion)
    )


def _trainable(
    plan: SweepPlan, data: SplitData, features: SweepFeatures, *, resumed_from: str | None = None
) -> Any:
    _prepare_tune()
    resources = plan.config.resources
    if plan.fusion is None:
        trainable = tune.with_parameters(
            train_trial, data=data, settings=plan.trial_settings, features=features.refs
        )
    else:  # fusion leaves pretrained backbones, the only ones with cached features, unfused
        trainable = fused_sweep.group_trainable(
            plan, data, fused_sweep.start_rung_record(plan, resumed_from=resumed_from)
        )
    return tune.with_resources(
        trainable, {"cpu": resources.cpus_per_trial, "gpu": gpu_share.gpus_per_trial(plan, data)}
    )


def _prepare_tune() -> None:
    # Tune's own per-trial files: result.json and progress.csv, not TensorBoard event files
    # (MLflow is where a person looks); and no warning that checkpoints force snapshots.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # The sweep handles Ctrl-C itself (sweeps/driver/running/interruption.py) and asks Tune to stop
    # the same graceful way; Tune's own handler would take the signal from it.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def _scheduler(asha: AshaSettings | None) -> ASHAScheduler | None:
    if asha is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=asha.max_t,
        grace_period=asha.grace_period,
        reduction_factor=asha.reduction_factor,
    )


def _callbacks(
    plan: SweepPlan,
    journal: SweepJournal,
    *,
    echo: Callable[[str], None],
    live: bool,
    features: SweepFeatures,
) -> list[tune.Callback]:
    config = plan.config
    diagnostics = config.diagnostics
    webhook = diagnostics.alert_webhook and WebhookSender(
        diagnostics.alert_webhook, allow_private=diagnostics.alert_webhook_allow_private, warn=echo
    )
    progress = ProgressPrinter(
        num_samples=config.search.num_samples,
        epochs=config.train.epochs,
        metric=config.search.metric,
        mode=config.search.mode,
        echo=echo,
        live=live,
        sampled=tuple(sampled_names(config.params)),
        notes=[note] if (note := features.note()) else [],
    )
    per_trial = [
        MlflowTrialLogger(
            journal.experiment_path,
            epochs=config.train.epochs,
            sampled=tuple(sampled_names(config.params)),
            on_alert=webhook or None,
        ),
        progress,
    ]
    return [
        *(per_trial if plan.fusion is None else [MemberEvents(per_trial, plan.fusion.groups)]),
        JsonLoggerCallback(),
        CSVLoggerCallback(),
        ResumeFromNewestCheckpoint(),
    ]
