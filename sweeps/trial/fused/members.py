"""A fused group's members: each one's sampled params, resolved params and seeds, as its solo trial
has them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sweeps.trial.building import trial_seed
from sweeps.trial_params import resolve_trial_params

T = TypeVar("T")


@dataclass(frozen=True)
class MemberSpec:
    """One member of a group: the trial it stands for (its index in the sweep's sampling order)."""

    index: int
    sampled: dict[
        str, Any
    ]  # as the sweep sampled it: what its MLflow params and its seeds come from
    params: dict[str, Any]  # the sampled params over the defaults
    model_seed: int  # torch.manual_seed before its solo model is built
    shuffle_seed: int  # its own shuffling order

    @property
    def key(self) -> str:
        """How reports name the member: its sampling index, as text (JSON keys are text)."""
        return str(self.index)


def member_specs(group: list[tuple[int, dict[str, Any]]], sweep_seed: int) -> list[MemberSpec]:
    """The members of `group` ((sampling index, sampled params) pairs) with the seeds their solo
    trials use."""
    return [
        MemberSpec(
            index=index,
            sampled=sampled,
            params=resolve_trial_params(sampled),
            model_seed=trial_seed(sampled, sweep_seed),
            shuffle_seed=trial_seed(sampled, sweep_seed + 1),
        )
        for index, sampled in group
    ]


def runs(values: Sequence[T]) -> list[tuple[int, int, T]]:
    """Maximal runs of equal neighbours as (start, stop, value): one kernel per run, not per
    member."""
    found: list[tuple[int, int, T]] = []
    for position, value in enumerate(values):
        if found and found[-1][2] == value:
            found[-1] = (found[-1][0], position + 1, value)
        else:
            found.append((position, position + 1, value))
    return found
