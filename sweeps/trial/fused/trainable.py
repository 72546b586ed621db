"""The Ray Tune trainable of a fused group: a thin adapter from Tune's config, checkpoints and the
sweep's early-stopping record to the group's training loop.

PyTorch is imported inside the function, which runs in the trials: the driver hands Tune
`train_group` without loading it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray

from sweeps.member_asha import MemberResult
from sweeps.trial.data import SplitData
from sweeps.trial.trainable import load_tune_checkpoint, report_to_tune
from sweeps.trial_settings import TrialSettings


def train_group(
    config: dict[str, Any],
    *,
    data: SplitData[np.ndarray],
    settings: TrialSettings,
    groups: list[list[tuple[int, dict[str, Any]]]],
    rungs: Any = None,
) -> None:
    """Train group number config["group"] of `groups`; `rungs` is the sweep's MemberAsha actor
    (None: no early stopping)."""
    from sweeps.trial.fused.loop import run_group_training

    decide = None
    if rungs is not None:

        def decide(results: list[MemberResult]) -> list[bool]:
            return ray.get(rungs.report.remote(results))  # one call an epoch for the whole group

    run_group_training(
        groups[config["group"]],
        settings,
        data,
        report_to_tune,
        decide=decide,
        resume_from=load_tune_checkpoint(),
    )


def probe_gpu(
    group: list[tuple[int, dict[str, Any]]], settings: TrialSettings, data: SplitData[np.ndarray]
) -> dict[str, float]:
    """sweeps.trial.fused.gpu_probe.probe_gpu, importable by the driver without PyTorch (it runs as
    a Ray task)."""
    from sweeps.trial.fused.gpu_probe import probe_gpu as probe

    return probe(group, settings, data)
