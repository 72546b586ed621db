"""What a trial and a fused group report after each epoch: the messages from the trial side to
the driver, defined once for their writers (the training loops) and every reader (the Tune
callbacks, the sweep's outcome, the early-stopping record a resumed sweep rebuilds).

Tune flattens nested dicts in a result into columns and copies every number into its files
and snapshots, so what varies by member or layer travels as one JSON string each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# What every trial (and every member of a fused group) reports each epoch, besides `epoch`.
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")

Metrics = dict[
    str, Any
]  # an epoch's EPOCH_METRICS, with `stop_reason`, `diverged`, `early_stopped` where they apply


def encode_diagnostics(diagnostics: Mapping[str, Any]) -> str:
    """An epoch's diagnostics as one string in a Tune result, not a tree of hundreds of numbers."""
    return json.dumps(diagnostics)


def diagnostics_of(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The diagnostics a Tune result carries, whether still a dict or encoded for Tune."""
    diagnostics = result.get("diagnostics")
    if isinstance(diagnostics, str):
        decoded: dict[str, Any] = json.loads(diagnostics)
        return decoded
    return diagnostics if isinstance(diagnostics, dict) else None


@dataclass(frozen=True)
class GroupReport:
    """A fused group's report for one epoch: each member's metrics as its solo trial reports
    them."""

    epoch: int
    members: dict[
        str, Metrics
    ]  # member key -> this epoch's metrics, for the members that trained it
    ended: dict[
        str, Metrics
    ]  # member key -> its last epoch's metrics with that `epoch`, for every member that ended
    active: list[int]  # the sampling indices of the members still training
    # member key -> its epoch's diagnostics
    diagnostics: dict[str, dict[str, Any]] | None = field(default=None)

    def as_result(self) -> dict[str, Any]:
        """The report as the trainable hands it to Tune (report_to_tune encodes the diagnostics)."""
        result: dict[str, Any] = {
            "epoch": self.epoch,
            "members": json.dumps(self.members),
            "ended": json.dumps(self.ended),
            "active": self.active,
        }
        if self.diagnostics is not None:
            result["diagnostics"] = self.diagnostics
        return result

    @classmethod
    def from_result(cls, result: Mapping[str, Any] | None) -> GroupReport | None:
        """The report in a Tune result (a live one, a line of result.json, a row of Tune's
        dataframe); None for a result that is not a group's report (Tune's own bookkeeping)."""
        if not result or not isinstance(result.get("members"), str):
            return None
        diagnostics = diagnostics_of(result)
        active = result.get("active")
        return cls(
            epoch=int(result["epoch"]),
            members=json.loads(result["members"]),
            ended=json.loads(result.get("ended") or "{}"),
            active=list(active) if isinstance(active, list) else [],
            diagnostics=diagnostics,
        )


def ended_members(result: Mapping[str, Any] | None) -> dict[str, Metrics]:
    """The members a group's latest result says have ended (none for a result that is no group
    report)."""
    report = GroupReport.from_result(result)
    return report.ended if report is not None else {}
