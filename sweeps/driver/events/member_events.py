"""A fused group's Tune events as each member's own: the sweep's callbacks see every member as a
trial.

Ray Tune sees one trial per group. MemberEvents hands the callbacks that keep MLflow runs
and the progress (MlflowTrialLogger, ProgressPrinter) one MemberTrial per member instead,
with its own id, config, results and end, so their logic is the same for a fused sweep
as for an unfused one. A member's id is the one the unfused sweep would give that trial:
the experiment's prefix of Tune's trial ids and the member's index in sampling order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from ray import tune
from ray.tune.experiment import Trial

from sweeps.driver.planning.fusion import Member
from sweeps.epoch_report import GroupReport, ended_members
from sweeps.trial.trainable import train_trial

if TYPE_CHECKING:
    from ray.tune.stopper import Stopper


class MemberTrial:
    """A member of a fused group, with what Tune callbacks read of a trial."""

    def __init__(self, trial_id: str, index: int, config: dict[str, Any], *, group: str) -> None:
        self.trial_id = trial_id
        self.key = str(index)  # as the group's reports name it
        self.config = config
        self.last_result: dict[str, Any] = {}
        self.num_failures = 0
        self.run_tags = {
            "sweep.fused_group": group
        }  # what tells a member's MLflow run from a trial's

    def __str__(self) -> str:
        return f"{train_trial.__name__}_{self.trial_id}"  # as Tune names the unfused sweep's trial


# What the sweep's own callbacks are handed: Tune's trial, or a fused group's member.
SweepTrial: TypeAlias = Trial | MemberTrial


def member_id(group_trial_id: str, index: int) -> str:
    return f"{group_trial_id.rsplit('_', 1)[0]}_{index:05d}"


def member_result(
    metrics: dict[str, Any], group_result: dict[str, Any], diagnostics: dict[str, Any] | None
) -> dict[str, Any]:
    """A member's metrics as a trial's Tune result: its epoch is its training_iteration."""
    result = {key: value for key, value in metrics.items() if key != "epoch"} | {
        "training_iteration": metrics["epoch"]
    }
    for key in ("node_id", "iterations_since_restore"):
        if key in group_result:
            result[key] = group_result[key]
    if diagnostics is not None:
        result["diagnostics"] = diagnostics
    return result


class MemberEvents(tune.Callback):
    """Fans each group trial's events out to `callbacks`, member by member."""

    def __init__(self, callbacks: list[tune.Callback], groups: list[list[Member]]) -> None:
        self.callbacks = callbacks
        self.groups = groups
        self._members: dict[str, MemberTrial] = {}
        self._ended: set[str] = set()  # members whose end the callbacks have seen

    def members_of(self, trial: Trial) -> list[MemberTrial]:
        """The MemberTrials of a group trial, made once each."""
        found: list[MemberTrial] = []
        for index, config in self.groups[trial.config["group"]]:
            key = member_id(trial.trial_id, index)
            if key not in self._members:
                self._members[key] = MemberTrial(key, index, config, group=str(trial))
            found.append(self._members[key])
        return found

    def _all(self, trials: list[Trial]) -> list[MemberTrial]:
        return [member for trial in trials for member in self.members_of(trial)]

    def _running(self, trial: Trial) -> list[MemberTrial]:
        """The group's members not ended (by Tune's last record of it and by what this session
        saw)."""
        ended = ended_members(trial.last_result)
        return [
            member
            for member in self.members_of(trial)
            if member.trial_id not in self._ended and member.key not in ended
        ]

    def _each(self, hook: str, **info: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(**info)

    def setup(
        self,
        stop: Stopper | None = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        self._each(
            "setup",
            stop=stop,
            num_samples=num_samples,
            total_num_samples=total_num_samples,
            **info,
        )

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        for member in self._running(trial):
            member.num_failures = trial.num_failures
            self._each(
                "on_trial_start",
                iteration=iteration,
                trials=self._all(trials),
                trial=member,
                **info,
            )

    def on_trial_recover(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        for member in self._running(trial):
            member.num_failures = trial.num_failures
            self._each(
                "on_trial_recover",
                iteration=iteration,
                trials=self._all(trials),
                trial=member,
                **info,
            )

    def on_trial_result(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        report = GroupReport.from_result(result)
        if report is None:
            return  # not a group's report (Tune's own bookkeeping result)
        members = {member.key: member for member in self.members_of(trial)}
        everyone = self._all(trials)
        for key, metrics in report.members.items():
            member = members[key]
            if member.trial_id in self._ended:
                continue  # a retried group going over an epoch after a member ended
            diagnostics = None if report.diagnostics is None else report.diagnostics[key]
            member.last_result = member_result(
                {"epoch": report.epoch, **metrics}, result, diagnostics
            )
            self._each(
                "on_trial_result",
                iteration=iteration,
                trials=everyone,
                trial=member,
                result=member.last_result,
            )
        for key, metrics in report.ended.items():
            member = members[key]
            if member.trial_id not in self._ended:
                member.last_result = member_result(metrics, result, None)
                self._finish(member, iteration, everyone, errored=False)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        for member in self._running(
            trial
        ):  # a group ends with its last member; none should be left
            self._finish(member, iteration, self._all(trials), errored=False)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        for member in self._running(trial):
            self._finish(member, iteration, self._all(trials), errored=True)

    def _finish(
        self, member: MemberTrial, iteration: int, trials: list[MemberTrial], *, errored: bool
    ) -> None:
        self._ended.add(member.trial_id)
        self._each(
            "on_trial_error" if errored else "on_trial_complete",
            iteration=iteration,
            trials=trials,
            trial=member,
        )

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._each("on_experiment_end", trials=self._all(trials), **info)
