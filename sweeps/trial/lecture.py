"""What `sweep lecture` measures in plain PyTorch, without Ray: activations at initialization,
short trainings for the random-against-grid comparison, and a backbone pretrained for transfer.

Each uses the trial's own code (the seeded model of build_trial_model, the loop of
run_training), so what it measures is what `sweep run` would train on the same sweep file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from sweeps.trial.building import build_trial_model, trial_seed
from sweeps.trial.data import SplitData
from sweeps.trial.measurements import PROBE_EXAMPLES, activation_layers
from sweeps.trial.training import run_training
from sweeps.trial_params import resolve_trial_params
from sweeps.trial_settings import TrialSettings


@torch.no_grad()
def activations_at_init(
    sampled: dict[str, Any], settings: TrialSettings, data: SplitData[np.ndarray]
) -> dict[str, np.ndarray]:
    """Every hidden activation of the trial's freshly initialized model on the diagnostics'
    probe batch, by layer in forward order: the same model (same seed) and batch whose
    statistics `sweep run` logs at step 0 as act_std/<layer>."""
    torch.set_num_threads(settings.threads)
    on_cpu = data.to(torch.device("cpu"))
    torch.manual_seed(trial_seed(sampled, settings.seed))
    model = build_trial_model(settings, resolve_trial_params(sampled), on_cpu)
    model.train()  # as the probe measures: batch norm normalizes with the batch
    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        module.register_forward_hook(
            lambda _module, _inputs, output, name=name: outputs.__setitem__(name, output)
        )
        for name, module in activation_layers(model).items()
    ]
    model(on_cpu.inputs(on_cpu.train_x[:PROBE_EXAMPLES]))
    for hook in hooks:
        hook.remove()
    return {name: output.flatten().numpy().copy() for name, output in outputs.items()}


def best_metric(
    sampled: dict[str, Any],
    settings: TrialSettings,
    data: SplitData[np.ndarray],
    *,
    metric: str = "val_acc",
) -> float:
    """Train one trial as a Ray worker would (same seed, same loop) and return its best epoch's
    `metric`."""
    values: list[float] = []
    run_training(
        sampled, settings, data, report=lambda metrics, _checkpoint: values.append(metrics[metric])
    )
    finite = [value for value in values if np.isfinite(value)]
    return max(finite) if finite else float("nan")


def pretrain_backbone(
    sampled: dict[str, Any], settings: TrialSettings, data: SplitData[np.ndarray], path: Path
) -> list[dict[str, Any]]:
    """Train one `model.arch: pretrained` trial and save its backbone as the state_dict file
    that `model.weights` takes; returns the epochs' metrics.

    The file is in torchvision's own shape for the backbone, so `load_backbone` reads it
    like any other: every tensor the pretraining trained, and where the shape differs (the
    classifier, which has as many outputs as the pretraining had classes) torchvision's
    fresh one. Fine-tuning replaces the classifier anyway.
    """
    import torchvision

    epochs: list[dict[str, Any]] = []
    final: dict[str, dict[str, torch.Tensor]] = {}

    def keep(metrics: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        epochs.append({key: value for key, value in metrics.items() if key != "diagnostics"})
        if checkpoint is not None:
            final["model"] = {
                key: value.detach().clone() for key, value in checkpoint["model"].items()
            }

    run_training(sampled, settings, data, report=keep)
    trained = {
        key.removeprefix("backbone."): value
        for key, value in final["model"].items()
        if key.startswith("backbone.")
    }
    reference = torchvision.models.get_model(
        settings.model_options["backbone"], weights=None
    ).state_dict()
    state = {
        key: trained[key] if key in trained and trained[key].shape == value.shape else value
        for key, value in reference.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return epochs
