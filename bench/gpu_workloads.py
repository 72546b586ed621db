"""What bench/gpu.py's parts share: workload sizes, sweep files, trial inputs, timing, results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # the checkout's modules, also when imported on its own
    sys.path.insert(0, str(REPO))

from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data
from sweeps.driver.sweep_file.distributions import preview_trial_configs
from sweeps.driver.sweep_file.validation import validate_sweep
from sweeps.trial.building import build_trial_model
from sweeps.trial.data import SplitData
from sweeps.trial.training import run_training
from sweeps.trial_settings import TrialSettings


def ignore(metrics: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
    """A report callback for timing: the reports are not what is measured."""


def train_each(trials: list[dict[str, Any]], settings: TrialSettings, data: SplitData) -> None:
    for trial in trials:
        run_training(trial, settings, data, ignore)


@dataclass(frozen=True)
class Sizes:
    resnet_images: int
    loop_epochs: int
    fused_mlp_epochs: int
    fused_resnet_epochs: int
    process_seconds: float
    sweep_epochs: int
    device: str


GPU = Sizes(
    resnet_images=16384,
    loop_epochs=5,
    fused_mlp_epochs=5,
    fused_resnet_epochs=1,
    process_seconds=6.0,
    sweep_epochs=4,
    device="cuda",
)
DRY = Sizes(
    resnet_images=256,
    loop_epochs=1,
    fused_mlp_epochs=1,
    fused_resnet_epochs=1,
    process_seconds=0.5,
    sweep_epochs=1,
    device="cpu",
)


def sweep_config(kind: str, sizes: Sizes, *, trials: int, **sections: Any) -> dict[str, Any]:
    """A sweep file (as a dict) of `trials` MLP or resnet-small trials on this machine's device."""
    data = (
        {"dataset": "digits"}
        if kind == "mlp"
        else {
            "dataset": "synthetic",
            "preprocess": "standardize",
            "synthetic": {
                "num_examples": sizes.resnet_images,
                "num_classes": 10,
                "shape": [3, 32, 32],
            },
        }
    )
    model = (
        {"arch": "mlp", "hidden": [128, 128, 128]}
        if kind == "mlp"
        else {"arch": "resnet", "widths": [16, 32, 64]}
    )
    params = {
        "lr": {"log_uniform": [1.0e-3, 1.0e-1]},
        "activation": "relu",
        "init": "he",
        "batch_norm": True,
        "momentum": 0.9,
        "batch_size": 64 if kind == "mlp" else 128,
    }
    train = {
        "epochs": sizes.loop_epochs,
        "device": sizes.device,
        "checkpoint_min_interval_s": 3600,
    } | sections.pop("train", {})
    return {
        "name": f"gpu-{kind}",
        "data": data,
        "model": model,
        "params": params,
        "train": train,
        "search": {"num_samples": trials, "max_concurrent": 2},
        "diagnostics": {"enabled": False},
    } | sections


def trial_inputs(
    kind: str, sizes: Sizes, *, trials: int, **sections: Any
) -> tuple[TrialSettings, SplitData, list[dict[str, Any]]]:
    """A workload's trial settings, its data, and the `trials` configs its sampler draws."""
    config = validate_sweep(
        sweep_config(kind, sizes, trials=trials, **sections), source=f"gpu-{kind}"
    )
    sampled = preview_trial_configs(config.params, seed=config.search.seed, num_samples=trials)
    return build_trial_settings(config), load_sweep_data(config), sampled


def timed(run: Callable[[], object], device: str) -> float:
    """Seconds `run` takes, the GPU's queued work included."""
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def plain_epochs(
    settings: TrialSettings, data: SplitData, sampled: dict[str, Any], epochs: int
) -> None:
    """The hand-written loop: the trial's model and optimizer, data on the device, indexed batches,
    nothing else."""
    device = torch.device(settings.device)
    train_x, train_y = (
        torch.from_numpy(data.train_x).to(device),
        torch.from_numpy(data.train_y).to(device),
    )
    torch.manual_seed(0)
    model = build_trial_model(
        settings, {"activation": "relu", "init": "he", "batch_norm": True, "bias_init": 0.0}, data
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=sampled["lr"], momentum=0.9)
    batch = sampled["batch_size"]
    for _ in range(epochs):
        order = torch.randperm(len(train_y), device=device)
        for start in range(0, len(train_y) - 1, batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


class Bench:
    """Collects the table's rows (echoed to stderr as they come) and the figures."""

    def __init__(self, sizes: Sizes, workdir: Path) -> None:
        self.sizes, self.workdir = sizes, workdir
        self.rows: list[tuple[str, str, str]] = []
        self.figures: list[dict[str, Any]] = []

    def row(self, label: str, value: str, detail: str) -> None:
        self.rows.append((label, value, detail))
        print(f"{label}: {value}  {detail}", file=sys.stderr, flush=True)

    def figure(self, figure: dict[str, Any]) -> None:
        self.figures.append(figure)
