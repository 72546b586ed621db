"""What a trial builds before it trains: its seeds, its model, its optimizer, and where it
computes."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from models import build_model
from sweeps.trial.data import ArrayT, SplitData
from sweeps.trial_params import ARCHITECTURE_PARAMS
from sweeps.trial_settings import TrialSettings


def trial_seed(params: dict[str, Any], sweep_seed: int) -> int:
    """A seed that depends only on the sweep's seed and the trial's sampled params."""
    fingerprint = json.dumps(params, sort_keys=True, default=str).encode()
    return zlib.crc32(fingerprint, sweep_seed & 0xFFFFFFFF)


def build_trial_model(
    settings: TrialSettings, params: dict[str, Any], data: SplitData[ArrayT]
) -> nn.Module:
    """The trial's model: the sweep's architecture with the trial's parts plugged in."""
    own_params = {name: params[name] for name in ARCHITECTURE_PARAMS.get(settings.arch, ())}
    return build_model(
        settings.arch,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        activation=params["activation"],
        init=params["init"],
        batch_norm=params["batch_norm"],
        bias_init=params["bias_init"],
        **settings.model_options,
        **own_params,
    )


def build_optimizer(
    model: nn.Module, *, name: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    # Frozen (transfer-learning) parameters get no optimizer state at all.
    trainable = [param for param in model.parameters() if param.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(trainable, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose from ['adam', 'sgd']")


@dataclass(frozen=True)
class Placement:
    """Where and how a trial computes: device, autocast precision, memory format."""

    device: torch.device
    autocast: torch.dtype | None = None
    channels_last: bool = False

    def forward(
        self, model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        with torch.autocast(
            self.device.type,
            dtype=self.autocast or torch.float32,
            enabled=self.autocast is not None,
        ):
            return model(x)


CHANNELS_LAST_ARCHS = ("cnn", "resnet", "pretrained")


def resolve_placement(settings: TrialSettings) -> Placement:
    """`auto` is CUDA exactly when this process can see a GPU, which under Ray means
    the trial was given one (Ray hides the others through CUDA_VISIBLE_DEVICES)."""
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "train.device is cuda but this trial sees no GPU: set resources.gpus_per_trial above 0"
        )
    use_cuda = settings.device == "cuda" or (
        settings.device == "auto" and torch.cuda.is_available()
    )
    device = torch.device("cuda" if use_cuda else "cpu")
    return Placement(
        device=device,
        autocast=torch.bfloat16 if settings.precision == "bf16" else None,
        channels_last=device.type == "cuda" and settings.arch in CHANNELS_LAST_ARCHS,
    )
