"""A short measured probe of one group (or one trial) on one GPU: peak memory and step time, for
`gpus_per_trial: auto`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sweeps.trial.building import Placement, resolve_placement
from sweeps.trial.data import SplitData
from sweeps.trial.fused.model import FUSED_ARCHITECTURES
from sweeps.trial.training import build_trial_state
from sweeps.trial_settings import TrialSettings

WARM_UP_STEPS, MEASURED_STEPS = 5, 20


def probe_gpu(
    group: list[tuple[int, dict[str, Any]]], settings: TrialSettings, data: SplitData[np.ndarray]
) -> dict[str, float]:
    """Train `group` (fused, or its first trial alone where the architecture cannot be fused) for a
    few
    steps on this process's GPU; its peak memory, the GPU's memory and the mean step time."""
    settings = dataclasses.replace(settings, device="cuda")
    placement = resolve_placement(settings)
    torch.cuda.reset_peak_memory_stats()
    step, batch_size = _stepper(group, settings, data, placement)
    generator = torch.Generator(device=placement.device).manual_seed(0)
    examples = len(data.train_y)
    for number in range(WARM_UP_STEPS + MEASURED_STEPS):
        if number == WARM_UP_STEPS:
            torch.cuda.synchronize()
            started = time.perf_counter()
        step(torch.randint(examples, (batch_size,), device=placement.device, generator=generator))
    torch.cuda.synchronize()
    return {
        "step_ms": (time.perf_counter() - started) / MEASURED_STEPS * 1000,
        "peak_bytes": torch.cuda.max_memory_allocated(),
        "total_bytes": torch.cuda.get_device_properties(placement.device).total_memory,
        "members": len(group) if settings.arch in FUSED_ARCHITECTURES else 1,
    }


def _stepper(
    group: list[tuple[int, dict[str, Any]]],
    settings: TrialSettings,
    data: SplitData[np.ndarray],
    placement: Placement,
) -> tuple[Callable[[torch.Tensor], None], int]:
    """One optimizer step of the group (or its first trial) on a batch of example indices."""
    from sweeps.trial.fused.loop import build_group_state

    if settings.arch not in FUSED_ARCHITECTURES:
        state = build_trial_state(group[0][1], settings, data, placement)

        def solo_step(idx: torch.Tensor) -> None:
            loss = F.cross_entropy(
                placement.forward(state.model, state.data.inputs(state.data.train_x[idx])),
                state.data.train_y[idx],
            )
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()

        return solo_step, state.params["batch_size"]
    group_state = build_group_state(group, settings, data, placement)
    model, members = group_state.model, len(group)

    def group_step(idx: torch.Tensor) -> None:
        idx = idx.expand(members, -1)
        logits = placement.forward(model, model.gather(group_state.data, idx))
        loss = (
            F.cross_entropy(
                logits.flatten(0, 1), group_state.data.train_y[idx].flatten(), reduction="none"
            )
            .view(members, -1)
            .mean(1)
            .sum()
        )
        group_state.optimizer.zero_grad()
        loss.backward()
        group_state.optimizer.step()

    return group_step, group_state.members[0].params["batch_size"]
