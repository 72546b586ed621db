"""Per-member early stopping makes Ray Tune's ASHA decisions, result for result."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from sweeps.member_asha import MemberAsha


def simulate(
    members: int, *, max_t: int, grace_period: int, reduction_factor: float, mode: str, seed: int
):
    """Results as fused groups report them: groups of members in lockstep, groups interleaved at
    random, members ending on their own now and then; each fed to Tune's ASHA and to MemberAsha."""
    rng = random.Random(seed)
    tune_asha = ASHAScheduler(
        time_attr="training_iteration",
        metric="val_acc",
        mode=mode,
        max_t=max_t,
        grace_period=grace_period,
        reduction_factor=reduction_factor,
    )
    ours = MemberAsha(
        max_t=max_t,
        grace_period=grace_period,
        reduction_factor=reduction_factor,
        metric="val_acc",
        mode=mode,
    )
    trials = {index: SimpleNamespace(trial_id=f"t{index}") for index in range(members)}
    for trial in trials.values():
        tune_asha.on_trial_add(None, trial)
    quality = {index: rng.random() for index in trials}
    groups = [list(range(start, min(start + 5, members))) for start in range(0, members, 5)]
    epochs = {tuple(group): 0 for group in groups}
    live = {index: True for index in trials}
    decisions = []
    while any(live.values()):
        group = rng.choice([group for group in groups if any(live[index] for index in group)])
        epochs[tuple(group)] += 1
        epoch = epochs[tuple(group)]
        results = []
        for index in group:
            if not live[index]:
                continue
            value = (
                quality[index] * epoch + rng.gauss(0, 0.3) if rng.random() > 0.05 else float("nan")
            )
            ends_itself = rng.random() < 0.05
            results.append((index, epoch, {"val_acc": value}, ends_itself or epoch >= max_t))
        stops = ours.report(results)
        for (index, _, metrics, ends_itself), stop in zip(results, stops, strict=True):
            result = {"training_iteration": epoch, "val_acc": metrics["val_acc"]}
            tune_stop = (
                tune_asha.on_trial_result(None, trials[index], result) == TrialScheduler.STOP
            )
            if tune_stop or ends_itself:
                tune_asha.on_trial_complete(None, trials[index], result)
                live[index] = False
            decisions.append((index, epoch, tune_stop, stop))
    return decisions, tune_asha, ours


# Tune's cutoff of a rung whose records are all NaN
@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")
@pytest.mark.parametrize(
    ("max_t", "grace_period", "reduction_factor", "mode"),
    [(20, 1, 4, "max"), (16, 1, 4, "max"), (10, 2, 2.5, "min"), (9, 1, 3, "max")],
)
@pytest.mark.parametrize("seed", range(4))
def test_every_decision_is_tunes_own(max_t, grace_period, reduction_factor, mode, seed):
    decisions, tune_asha, ours = simulate(
        23,
        max_t=max_t,
        grace_period=grace_period,
        reduction_factor=reduction_factor,
        mode=mode,
        seed=seed,
    )
    assert [tune for *_, tune, _ in decisions] == [mine for *_, mine in decisions]
    assert any(stop for *_, stop in decisions if _[1] < max_t)  # some members were cut before max_t
    # The same rungs hold the same records.
    bracket = tune_asha._brackets[0]
    assert [milestone for milestone, _ in bracket._rungs] == [
        milestone for milestone, _ in ours.rungs
    ]
    for (_, theirs), (_, mine) in zip(bracket._rungs, ours.rungs, strict=True):
        assert {int(key[1:]): value for key, value in theirs.items()} == pytest.approx(
            mine, nan_ok=True
        )


def test_a_retried_group_gets_the_decisions_it_got_before():
    asha = MemberAsha(max_t=20, grace_period=1, reduction_factor=4, metric="val_acc", mode="max")
    first = asha.report([(0, 1, {"val_acc": 0.9}, False), (1, 1, {"val_acc": 0.1}, False)])
    assert first == [False, True]
    # A retry from an earlier checkpoint reports epoch 1 again, with other numbers (another worker).
    assert asha.report([(1, 1, {"val_acc": 0.95}, False)]) == [True]


def test_a_rebuilt_record_decides_as_the_one_it_replaces():
    asha = MemberAsha(max_t=20, grace_period=1, reduction_factor=4, metric="val_acc", mode="max")
    results = [
        (index, 1, {"val_acc": value}, False) for index, value in enumerate([0.5, 0.7, 0.2, 0.9])
    ]
    stopped = asha.report(results)
    rebuilt = MemberAsha(max_t=20, grace_period=1, reduction_factor=4, metric="val_acc", mode="max")
    rebuilt.replay(results, stopped)
    assert rebuilt.recorded() == asha.recorded()
    assert rebuilt.report([(4, 1, {"val_acc": 0.6}, False)]) == asha.report(
        [(4, 1, {"val_acc": 0.6}, False)]
    )
