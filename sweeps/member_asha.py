"""Early stopping for the members of fused groups: ASHA's asynchronous rule over the rung records of
every member of a sweep.

Ray Tune's ASHA (ray/tune/schedulers/async_hyperband.py, AsyncHyperBandScheduler with one
_Bracket, checked against Ray 2.60.0) decides per Tune trial; a fused group is one Tune
trial holding many of the sweep's trials. This is the same rule, member by member: a
member reaching a rung is stopped when its metric falls below the rung's cutoff, the
(1 - 1/reduction_factor) percentile of the members recorded there before it, and every
member stops at max_t. tests/test_member_asha.py holds it to Tune's own scheduler on
the same reported values.

One record serves the whole sweep, so every group's members count at every rung: the
driver creates it as a Ray actor (sweeps.driver.running.fused_sweep) that each group calls once
an epoch. Shared by both sides and plain Python: the trials call it, the driver builds it.
"""

from __future__ import annotations

import warnings

import numpy as np

from sweeps.epoch_report import Metrics

# (member's sampling index, epoch, its metrics, whether it ends after this epoch on its own)
MemberResult = tuple[int, int, Metrics, bool]


class MemberAsha:
    """Tune's ASHA (one bracket, stop_last_trials) for members, with each decision remembered:
    a group retried from its checkpoint, reporting an epoch again, gets the decision it got
    before."""

    def __init__(
        self, *, max_t: int, grace_period: int, reduction_factor: float, metric: str, mode: str
    ) -> None:
        self.max_t = max_t
        self.reduction_factor = reduction_factor
        self.metric = metric
        self.sign = 1.0 if mode == "max" else -1.0
        # _Bracket's MAX_RUNGS with s = 0
        count = int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)
        self.rungs: list[tuple[float, dict[int, float]]] = [
            (grace_period * reduction_factor**k, {}) for k in reversed(range(count))
        ]
        self.decisions: dict[tuple[int, int], bool] = {}

    def report(self, results: list[MemberResult]) -> list[bool]:
        """For each member's result of an epoch, in order: whether early stopping stops it."""
        return [self._decide(*result) for result in results]

    def replay(self, results: list[MemberResult], stopped: list[bool]) -> None:
        """Put back results reported before (a resumed sweep), with the decisions they got then."""
        for result, stop in zip(results, stopped, strict=True):
            self._decide(*result)
            self.decisions[(result[0], result[1])] = stop

    def _decide(self, member: int, epoch: int, metrics: Metrics, ends_itself: bool) -> bool:
        if (member, epoch) in self.decisions:
            return self.decisions[(member, epoch)]
        value = metrics.get(self.metric)
        if value is None:
            stop = False  # Tune skips a result without its metric
        else:
            reward = self.sign * float(value)
            # Tune: on_trial_result, then on_trial_complete for a trial that stops or ends.
            stop = epoch >= self.max_t or self._on_rung(member, epoch, reward)
            if stop or ends_itself:
                self._on_rung(member, epoch, reward)
        self.decisions[(member, epoch)] = stop
        return stop

    def _on_rung(self, member: int, epoch: int, reward: float) -> bool:
        """_Bracket.on_result: record the member at the highest rung it reached and has no record
        at; stop it below the cutoff."""
        for milestone, recorded in self.rungs:
            if epoch < milestone or member in recorded:
                continue
            cutoff = self.cutoff(recorded)
            stop = cutoff is not None and reward < cutoff
            recorded[member] = reward
            return stop
        return False

    def cutoff(self, recorded: dict[int, float]) -> float | None:
        if not recorded:
            return None
        with (
            warnings.catch_warnings()
        ):  # every record NaN: the cutoff is NaN and stops nobody, as in Tune
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(
                np.nanpercentile(list(recorded.values()), (1 - 1 / self.reduction_factor) * 100)
            )

    def recorded(self) -> dict[float, dict[int, float]]:
        """Each rung's records, lowest rung first (for tests and a person looking)."""
        return {milestone: dict(recorded) for milestone, recorded in reversed(self.rungs)}
