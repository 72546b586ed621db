"""The training loop: plain functions over in-memory tensors that know nothing of Ray."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sweeps.trial.augmentation import BatchAugmenter
from sweeps.trial.building import (
    Placement,
    build_optimizer,
    build_trial_model,
    resolve_placement,
    trial_seed,
)
from sweeps.trial.data import SplitData
from sweeps.trial.diagnostics import Diagnostics
from sweeps.trial.frozen_features import FrozenFeatures, train_on_features
from sweeps.trial.measurements import PROBE_EXAMPLES, MeasuredModel, SoloModel
from sweeps.trial_params import resolve_trial_params
from sweeps.trial_settings import TrialSettings

SOLO = "trial"  # the one member a solo trial's diagnostics measure
ON_THE_CPU = Placement(torch.device("cpu"))


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of `batch_indices` (a lone trailing example is dropped)."""
    full, rest = divmod(num_examples, batch_size)
    return full + (rest > 1)


def batch_indices(
    num_examples: int,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Iterator[torch.Tensor]:
    """Shuffled index batches for one epoch, on `device` (one transfer per epoch, not per batch).

    A trailing batch of one example is dropped: batch norm cannot normalize a
    single example, and reshuffling gives it a batch in the next epoch.
    """
    order = torch.randperm(num_examples, generator=generator).to(device)
    for start in range(0, num_examples, batch_size):
        batch = order[start : start + batch_size]
        if len(batch) == 1 and batch_size > 1:
            return
        yield batch


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: SplitData[torch.Tensor],
    *,
    batch_size: int,
    generator: torch.Generator,
    diagnostics: Diagnostics | None = None,
    placement: Placement = ON_THE_CPU,
    augment: BatchAugmenter | None = None,
) -> dict[str, float]:
    """One pass over the training split, on data already on the trial's device; stops early if
    `diagnostics` asks to."""
    model.train()
    loss_sum = torch.zeros((), device=placement.device)
    correct = torch.zeros((), dtype=torch.long, device=placement.device)
    seen = 0
    for idx in batch_indices(len(data.train_y), batch_size, generator, placement.device):
        images = data.train_x[idx]
        x, y = data.inputs(augment(images) if augment is not None else images), data.train_y[idx]
        logits = placement.forward(model, x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        measured = diagnostics is not None and diagnostics.before_step()
        optimizer.step()
        # Accumulate as tensors: .item() per step would sync every batch on a GPU.
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if (
            measured
            and diagnostics is not None
            and diagnostics.after_step(loss.detach().unsqueeze(0))
        ):
            break
    return {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: SplitData[torch.Tensor],
    *,
    batch_size: int = 1024,
    placement: Placement = ON_THE_CPU,
) -> dict[str, float]:
    model.eval()
    loss_sum = torch.zeros((), device=placement.device)
    correct = torch.zeros((), dtype=torch.long, device=placement.device)
    for start in range(0, len(data.val_y), batch_size):
        x, y = (
            data.inputs(data.val_x[start : start + batch_size]),
            data.val_y[start : start + batch_size],
        )
        logits = placement.forward(model, x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    return {
        "val_loss": loss_sum.item() / len(data.val_y),
        "val_acc": correct.item() / len(data.val_y),
    }


# The lecture's rule of thumb: a loss over 3x where it started means it is exploding.
# Where it starts, for a sensibly initialized classifier, is chance: ln(num_classes).
DIVERGED_LOSS_FACTOR = 3.0


def divergence(train_loss: float, *, num_classes: int, epoch: int) -> str | None:
    """Why an epoch's training loss says the trial diverged (NaN, inf, or exploding), else None."""
    chance = math.log(num_classes)
    if not math.isfinite(train_loss):
        return f"diverged: the training loss became {train_loss} in epoch {epoch}"
    if train_loss > DIVERGED_LOSS_FACTOR * chance:
        return (
            f"diverged: the training loss was {train_loss:.3g} in epoch {epoch}, over "
            f"{DIVERGED_LOSS_FACTOR:g}x chance level (ln {num_classes} = {chance:.2f})"
        )
    return None


@dataclass
class TrialState:
    """What a trial trains and carries from epoch to epoch; a checkpoint holds all of it."""

    params: dict[str, Any]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # the shuffling order
    data: SplitData[torch.Tensor]  # on the trial's device
    # its random stream is checkpointed with the shuffling order's
    augment: BatchAugmenter | None = None
    next_epoch: int = 1

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """A plain dict of the live tensors: the caller saves it before training goes on."""
        return {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "preprocess": {
                "name": self.data.preprocess,
                "stats": self.data.stats,
                "full_scale": self.data.full_scale,
            },
            "params": self.params,
            "augment": self.augment.state() if self.augment is not None else None,
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.generator.set_state(checkpoint["generator"])
        if self.augment is not None:
            self.augment.restore(checkpoint["augment"])
        self.next_epoch = checkpoint["epoch"] + 1


def build_trial_state(
    sampled: dict[str, Any],
    settings: TrialSettings,
    data: SplitData[np.ndarray],
    placement: Placement,
    features: FrozenFeatures | None = None,
) -> TrialState:
    """The trial's seeded model, optimizer and shuffling order, with its data on its device;
    with `features`, the model cut after its frozen prefix and the features in place of the
    images."""
    params = resolve_trial_params(sampled)
    torch.manual_seed(trial_seed(sampled, settings.seed))
    generator = torch.Generator().manual_seed(trial_seed(sampled, settings.seed + 1))
    memory_format = torch.channels_last if placement.channels_last else torch.contiguous_format
    model = build_trial_model(settings, params, data)
    if features is not None:
        data = train_on_features(model, data, features)
    # The whole (small) data set moves to the device once; batches are indexed there.
    on_device = data.to(placement.device, memory_format=memory_format)
    # Module.to takes memory_format (torch's docs), but its typed overloads leave it out.
    model = model.to(placement.device, memory_format=memory_format)  # type: ignore[call-overload]
    optimizer = build_optimizer(
        model,
        name=settings.optimizer,
        lr=params["lr"],
        momentum=params["momentum"],
        weight_decay=params["weight_decay"],
    )
    augment = (
        BatchAugmenter(settings.augment, seed=trial_seed(sampled, settings.seed + 2))
        if settings.augment != "none"
        else None
    )
    return TrialState(params, model, optimizer, generator, on_device, augment)


def run_training(
    sampled: dict[str, Any],
    settings: TrialSettings,
    data: SplitData[np.ndarray],
    report: Callable[[dict[str, Any], dict[str, Any] | None], None],
    *,
    resume_from: dict[str, Any] | None = None,
    features: FrozenFeatures | None = None,
) -> None:
    """Train one trial for `settings.epochs`, calling `report(metrics, checkpoint)` each epoch.

    `checkpoint` is a plain dict (TrialState.checkpoint) every `settings.checkpoint_every`
    epochs, no sooner than `settings.checkpoint_min_interval_s` after the previous one,
    and at the last epoch or one that ends the trial; else None. Passing one back as
    `resume_from` continues exactly where it left off. With `features` (the frozen prefix's
    output for this trial's trainable_layers) it trains only what follows the prefix.
    """
    torch.set_num_threads(settings.threads)
    placement = resolve_placement(settings)
    state = build_trial_state(sampled, settings, data, placement, features)
    if resume_from is not None:
        state.restore(resume_from)
    diagnostics = start_diagnostics(
        SoloModel(state.model, SOLO),
        state.data,
        settings,
        epochs_done=state.next_epoch - 1,
        batch_size=state.params["batch_size"],
    )
    last_checkpoint_at = time.monotonic()
    for epoch in range(state.next_epoch, settings.epochs + 1):
        metrics = train_and_evaluate_epoch(
            state, epoch, diagnostics=diagnostics, placement=placement
        )
        ending = "stop_reason" in metrics
        now = time.monotonic()
        due = (
            epoch % settings.checkpoint_every == 0
            and now - last_checkpoint_at >= settings.checkpoint_min_interval_s
        )
        checkpoint = None
        if due or epoch == settings.epochs or ending:
            last_checkpoint_at = now
            checkpoint = state.checkpoint(epoch)
        report({"epoch": epoch, **metrics}, checkpoint)
        if ending:
            return


def train_and_evaluate_epoch(
    state: TrialState, epoch: int, *, diagnostics: Diagnostics | None, placement: Placement
) -> dict[str, Any]:
    """One epoch's metrics; `stop_reason` among them when the trial must end after it."""
    metrics: dict[str, Any] = train_one_epoch(
        state.model,
        state.optimizer,
        state.data,
        batch_size=state.params["batch_size"],
        generator=state.generator,
        diagnostics=diagnostics,
        placement=placement,
        augment=state.augment,
    )
    measured = None
    if diagnostics is not None:
        # Before evaluate(): the probe wants training mode, which the model is still in.
        measured = diagnostics.end_epoch(epoch, {SOLO: metrics["train_loss"]})[SOLO]
    evaluated = evaluate(state.model, state.data, placement=placement)
    stop_reason = diagnostics.stop_reasons.get(SOLO) if diagnostics is not None else None
    metrics = epoch_metrics(
        metrics, evaluated, stop_reason=stop_reason, num_classes=state.data.num_classes, epoch=epoch
    )
    if measured is not None:
        metrics["diagnostics"] = measured
    return metrics


def epoch_metrics(
    trained: dict[str, float],
    evaluated: dict[str, float],
    *,
    stop_reason: str | None,
    num_classes: int,
    epoch: int,
) -> dict[str, Any]:
    """An epoch's metrics as a trial (or a group's member) reports them: EPOCH_METRICS, with
    `diverged` and `stop_reason` when it must end after this epoch."""
    metrics: dict[str, Any] = {**trained, **evaluated}
    diverged = divergence(metrics["train_loss"], num_classes=num_classes, epoch=epoch)
    if diverged is not None:
        # Nothing more to learn from exploded weights: end the trial, say why, let the sweep go on.
        metrics["diverged"] = True
        stop_reason = diverged
    if stop_reason is not None:
        metrics["stop_reason"] = stop_reason
    return metrics


def start_diagnostics(
    model: MeasuredModel,
    data: SplitData[torch.Tensor],
    settings: TrialSettings,
    *,
    epochs_done: int,
    batch_size: int,
) -> Diagnostics | None:
    """The diagnostics of a model about to train (None where they are off), counting the steps
    of the epochs a resumed trial already trained."""
    if not settings.diagnostics.enabled or not model.members:
        return None
    probe = data.inputs(data.train_x[:PROBE_EXAMPLES])
    done_steps = epochs_done * steps_per_epoch(len(data.train_y), batch_size)
    return Diagnostics(model, probe, settings.diagnostics, start_step=done_steps)
