"""A fused sweep on Ray Tune: one Tune trial per group, the sweep's early-stopping record, and how
the members did.

Public Ray API only. The record is a MemberAsha Ray actor that every group reports its
members' epochs to; a resumed sweep rebuilds it from the result files Tune kept, with the
decisions the members got then.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ray import tune

from sweeps.driver.cluster import storage
from sweeps.driver.events.member_events import member_id
from sweeps.driver.planning.plan import SweepPlan
from sweeps.driver.record.journal import SweepJournal
from sweeps.driver.running.outcome import SweepOutcome, each_result
from sweeps.epoch_report import GroupReport, ended_members
from sweeps.errors import first_line
from sweeps.member_asha import MemberResult
from sweeps.trial.data import SplitData
from sweeps.trial.fused.trainable import train_group
from sweeps.trial_status import trial_status

if TYPE_CHECKING:
    import pandas as pd
    from ray.actor import ActorHandle
    from ray.tune import ResultGrid, Trainable

RESULT_FILE = "result.json"  # Tune's per-trial results, one JSON line per report


def group_trainable(plan: SweepPlan, data: SplitData, rungs: ActorHandle | None) -> type[Trainable]:
    assert plan.fusion is not None
    groups = plan.fusion.groups
    return tune.with_parameters(
        train_group, data=data, settings=plan.trial_settings, groups=groups, rungs=rungs
    )


def start_rung_record(plan: SweepPlan, *, resumed_from: str | None = None) -> ActorHandle | None:
    """The sweep's MemberAsha actor (None without early stopping), with the results of
    `resumed_from`'s groups put back."""
    if plan.asha is None:
        return None
    import ray

    from sweeps.member_asha import MemberAsha

    search = plan.config.search
    # No CPU of its own: it answers one call per group and epoch, and must not hold a trial's slot.
    actor = ray.remote(num_cpus=0)(MemberAsha)
    record: ActorHandle = actor.remote(  # type: ignore[assignment]  # Ray types the class as one
        max_t=plan.asha.max_t,
        grace_period=plan.asha.grace_period,
        reduction_factor=plan.asha.reduction_factor,
        metric=search.metric,
        mode=search.mode,
    )
    if resumed_from is not None:
        results, stopped = reported_results(resumed_from, epochs=plan.config.train.epochs)
        ray.get(record.replay.remote(results, stopped))
    return record


def reported_results(experiment_path: str, *, epochs: int) -> tuple[list[MemberResult], list[bool]]:
    """Every member result the experiment's groups reported, oldest first, and whether early
    stopping stopped each."""
    reports = []
    for folder in storage.subfolders(experiment_path):
        for order, line in enumerate(
            (storage.read_text(storage.join(folder, RESULT_FILE)) or "").splitlines()
        ):
            if line.strip():
                result = json.loads(line)
                if (report := GroupReport.from_result(result)) is not None:
                    reports.append((result.get("timestamp", 0), folder, order, report))
    results, stopped = [], []
    for *_, report in sorted(reports, key=lambda entry: entry[:3]):
        for key, metrics in report.members.items():
            results.append(
                (
                    int(key),
                    report.epoch,
                    metrics,
                    "stop_reason" in metrics or report.epoch >= epochs,
                )
            )
            stopped.append(bool(metrics.get("early_stopped")))
    return results, stopped


def summarize_members(results: ResultGrid, journal: SweepJournal, plan: SweepPlan) -> SweepOutcome:
    """The outcome of a fused sweep's Tune run (a ResultGrid of groups), counted by member as
    summarize_results counts trials: a member its group did not see to its end failed."""
    config = plan.config
    metric, mode, epochs = config.search.metric, config.search.mode, config.train.epochs
    outcome = SweepOutcome.of_journal(
        journal, experiment_name=config.experiment_name, metric=metric
    )
    ended: dict[str, dict[str, Any]] = {}
    best: tuple[float, str] | None = None  # (value, member key)
    run_ids: dict[str, str] = {}
    for result in each_result(results):
        last = result.metrics or {}  # empty for a group that failed before its first report
        ended |= ended_members(last)
        if result.error is not None:
            outcome.errors.append(first_line(result.error))
        for key, values in _member_histories(result.metrics_dataframe, metric).items():
            run_ids[key] = member_id(last["trial_id"], int(key))
            value = max(values) if mode == "max" else min(values)
            if best is None or (value > best[0] if mode == "max" else value < best[0]):
                best = (value, key)
    assert plan.fusion is not None
    configs = {str(index): sampled for group in plan.fusion.groups for index, sampled in group}
    for key in configs:
        final = ended.get(key)
        status = trial_status(
            None if final is None else final | {"training_iteration": final["epoch"]},
            epochs=epochs,
            errored=final is None,
        )
        outcome.statuses[status] += 1
    if outcome.succeeded and best is not None:
        outcome.best_value, outcome.best_params = best[0], dict(configs[best[1]])
        outcome.best_run_id = journal.run_of(run_ids[best[1]])
    return outcome


def _member_histories(frame: pd.DataFrame | None, metric: str) -> dict[str, list[float]]:
    """Each member's finite values of `metric` over the epochs its group reported."""
    import math

    histories: dict[str, list[float]] = {}
    if frame is None or "members" not in getattr(frame, "columns", ()):
        return histories
    for row in frame.to_dict("records"):
        report = GroupReport.from_result(row)
        for key, metrics in (report.members if report is not None else {}).items():
            value = metrics.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                histories.setdefault(key, []).append(float(value))
    return histories
