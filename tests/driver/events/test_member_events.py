"""A fused group's Tune events reach the sweep's callbacks as each member's own trial events."""

from __future__ import annotations

import json
from types import SimpleNamespace

from ray import tune

from sweeps.driver.events.member_events import MemberEvents
from sweeps.trial_status import trial_status

GROUPS = [[(2, {"lr": 0.1}), (5, {"lr": 0.01}), (7, {"lr": 1.0})], [(0, {"lr": 0.3})]]


class Recorder(tune.Callback):
    def __init__(self) -> None:
        self.events = []

    def _record(self, hook, trial, **info):
        self.events.append(
            (
                hook,
                str(trial),
                trial.trial_id,
                dict(trial.config),
                dict(info.get("result") or trial.last_result or {}),
                trial.num_failures,
            )
        )

    def on_trial_start(self, iteration, trials, trial, **info):
        self.live = sorted(str(other) for other in trials)
        self._record("start", trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._record("recover", trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._record("result", trial, result=result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record("complete", trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record("error", trial)


class GroupTrial(SimpleNamespace):
    """What MemberEvents reads of a Tune trial that trains a group."""

    def __str__(self) -> str:
        return f"train_group_{self.trial_id}"


def group_trial(number, trial_id, last_result=None, num_failures=0):
    return GroupTrial(
        trial_id=trial_id,
        config={"group": number},
        last_result=last_result or {},
        num_failures=num_failures,
    )


def report(epoch, members, ended, **extra):
    return {
        "epoch": epoch,
        "members": json.dumps(members),
        "ended": json.dumps(ended),
        "node_id": "n1",
        "iterations_since_restore": epoch,
        **extra,
    }


def test_each_member_starts_reports_and_ends_as_a_trial():
    recorder = Recorder()
    events = MemberEvents([recorder], GROUPS)
    group, other = group_trial(0, "ab12c_00000"), group_trial(1, "ab12c_00001")
    events.on_trial_start(iteration=1, trials=[group, other], trial=group)
    assert [(hook, name) for hook, name, *_ in recorder.events] == [
        ("start", f"train_trial_ab12c_0000{index}") for index in (2, 5, 7)
    ]
    # every member of every group
    assert recorder.live == sorted(f"train_trial_ab12c_0000{index}" for index in (0, 2, 5, 7))
    assert [config for _, _, _, config, *_ in recorder.events] == [
        config for _, config in GROUPS[0]
    ]
    assert events.members_of(group)[0].run_tags == {"sweep.fused_group": "train_group_ab12c_00000"}

    recorder.events.clear()
    metrics = {"train_loss": 2.0, "val_acc": 0.5}
    diagnostics = {"2": {"alerts": []}, "5": {"alerts": ["x"]}, "7": {"alerts": []}}
    ended = {"5": {"epoch": 1, **metrics, "early_stopped": True}}
    events.on_trial_result(
        iteration=2,
        trials=[group],
        trial=group,
        result=report(
            1,
            {"2": metrics, "5": metrics, "7": metrics},
            ended,
            diagnostics=json.dumps(diagnostics),
        ),
    )
    assert [(hook, trial_id) for hook, _, trial_id, *_ in recorder.events] == [
        ("result", "ab12c_00002"),
        ("result", "ab12c_00005"),
        ("result", "ab12c_00007"),
        ("complete", "ab12c_00005"),
    ]
    result = recorder.events[1][4]
    assert (
        result["training_iteration"] == 1
        and result["val_acc"] == 0.5
        and result["diagnostics"] == {"alerts": ["x"]}
    )
    assert result["node_id"] == "n1" and result["iterations_since_restore"] == 1
    assert trial_status(recorder.events[3][4], epochs=4, errored=False) == "early_stopped"

    recorder.events.clear()
    # A retry from the checkpoint before epoch 1 goes over it again: member 5's end is not told
    # twice.
    events.on_trial_recover(
        iteration=3, trials=[group], trial=group_trial(0, "ab12c_00000", num_failures=1)
    )
    events.on_trial_result(
        iteration=4,
        trials=[group],
        trial=group,
        result=report(1, {"2": metrics, "5": metrics, "7": metrics}, ended),
    )
    assert [(hook, trial_id) for hook, _, trial_id, *_ in recorder.events] == [
        ("recover", "ab12c_00002"),
        ("recover", "ab12c_00007"),
        ("result", "ab12c_00002"),
        ("result", "ab12c_00007"),
    ]
    assert recorder.events[0][5] == 1  # the member's retries are its group's

    recorder.events.clear()
    group.last_result = report(1, {"2": metrics, "7": metrics}, ended)
    events.on_trial_error(iteration=5, trials=[group], trial=group)
    assert [(hook, trial_id) for hook, _, trial_id, *_ in recorder.events] == [
        ("error", "ab12c_00002"),
        ("error", "ab12c_00007"),
    ]


def test_a_restored_group_starts_only_the_members_it_had_not_ended():
    recorder = Recorder()
    events = MemberEvents([recorder], GROUPS)  # a resumed sweep: the callbacks come back fresh
    ended = {"2": {"epoch": 3, "val_acc": 0.9, "diverged": True, "stop_reason": "diverged: ..."}}
    group = group_trial(0, "ab12c_00000", last_result=report(3, {}, ended))
    events.on_trial_start(iteration=1, trials=[group], trial=group)
    assert [trial_id for _, _, trial_id, *_ in recorder.events] == ["ab12c_00005", "ab12c_00007"]
