"""The Ray Tune trainable: a thin adapter from Tune's config and checkpoints to the plain training
loop.

PyTorch is imported inside the functions, which run in the trials: the driver hands
Tune `train_trial` without loading it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune

from sweeps.epoch_report import encode_diagnostics
from sweeps.trial.data import SplitData
from sweeps.trial_settings import TrialSettings

CHECKPOINT_FILE = "trial.pt"


def train_trial(
    config: dict[str, Any],
    *,
    data: SplitData[np.ndarray],
    settings: TrialSettings,
    features: dict[int, Any] | None = None,
) -> None:
    """One trial; `features` maps trainable_layers to the object store's frozen features for it
    (feature_cache.py)."""
    from sweeps.trial.training import run_training
    from sweeps.trial_params import resolve_trial_params

    ref = (features or {}).get(resolve_trial_params(config)["trainable_layers"])
    run_training(
        config,
        settings,
        data,
        report=report_to_tune,
        resume_from=load_tune_checkpoint(),
        features=None if ref is None else ray.get(ref),
    )


def report_to_tune(metrics: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
    # Which Ray node trained it: on a cluster, a person wants to know where a trial ran.
    metrics = metrics | {"node_id": ray.get_runtime_context().get_node_id()}
    if "diagnostics" in metrics:
        metrics["diagnostics"] = encode_diagnostics(metrics["diagnostics"])
    if checkpoint is None:
        tune.report(metrics)
        return
    import torch

    with tempfile.TemporaryDirectory() as folder:
        torch.save(checkpoint, Path(folder) / CHECKPOINT_FILE)
        saved = tune.Checkpoint.from_directory(folder)
        # The epoch's metrics beside the weights: a resumed sweep that finds this checkpoint
        # without Tune's record of it learns from them where the trial stood (checkpoint_recovery).
        saved.set_metadata({key: value for key, value in metrics.items() if key != "diagnostics"})
        tune.report(metrics, checkpoint=saved)


def load_tune_checkpoint() -> dict[str, Any] | None:
    """The trial's latest checkpoint when Tune restarts it (a retry or a resumed sweep)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    import torch

    with checkpoint.as_directory() as folder:
        # On the CPU first: a retry may land on a node without the GPU that saved it.
        return torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
