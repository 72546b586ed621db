"""The fused training loop: a group's members trained as one model, each on its own shuffled
batches.

Plain functions over in-memory tensors that know nothing of Ray, like sweeps.trial.training:
the loss is the sum of the members' mean cross-entropies, so each member's gradient is
the one its solo trial computes. A member ends on its own terms (its last epoch, its
divergence, a stop_on alert, or early stopping decided by `decide`); the group goes on
without it, and ends with its last member.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sweeps.epoch_report import GroupReport, Metrics
from sweeps.member_asha import MemberResult
from sweeps.trial.building import Placement, resolve_placement
from sweeps.trial.data import SplitData
from sweeps.trial.diagnostics import Diagnostics
from sweeps.trial.fused.diagnostics import MeasuredGroup
from sweeps.trial.fused.members import MemberSpec, member_specs
from sweeps.trial.fused.model import FusedModel, build_fused_model
from sweeps.trial.fused.optimizer import MemberOptimizer
from sweeps.trial.training import epoch_metrics, start_diagnostics
from sweeps.trial_settings import TrialSettings

Group = list[tuple[int, dict[str, Any]]]  # (sampling index, sampled params) of each member
# decide([(member index, epoch, metrics, ends on its own)]) -> which of them early stopping stops
Decide = Callable[[list[MemberResult]], list[bool]]


@dataclass
class GroupState:
    """What a group trains and carries from epoch to epoch; a checkpoint holds all of it."""

    model: FusedModel
    optimizer: MemberOptimizer
    generators: list[torch.Generator]  # each active member's shuffling order
    data: SplitData[torch.Tensor]  # on the group's device
    next_epoch: int = 1
    # member key -> its last epoch's metrics
    ended: dict[str, Metrics] = field(default_factory=dict)

    @property
    def members(self) -> list[MemberSpec]:
        return self.model.members

    def keep(self, positions: list[int]) -> None:
        """Only the members at `positions` go on training."""
        self.model.keep(positions)
        self.optimizer.keep(
            positions, [param for param in self.model.parameters() if param.requires_grad]
        )
        self.generators = [self.generators[position] for position in positions]

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """Every member still training, with its weights, optimizer state and shuffling order."""
        return {
            "epoch": epoch,
            "members": [member.index for member in self.members],
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": [generator.get_state() for generator in self.generators],
            "preprocess": {"name": self.data.preprocess, "stats": self.data.stats},
            "params": {member.index: member.sampled for member in self.members},
            "ended": dict(self.ended),
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        indices = [member.index for member in self.members]
        self.keep([indices.index(index) for index in checkpoint["members"]])
        self.next_epoch = checkpoint["epoch"] + 1
        self.ended = dict(checkpoint["ended"])
        if not self.members:
            return
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        for generator, saved in zip(self.generators, checkpoint["generators"], strict=True):
            generator.set_state(saved)


def build_group_state(
    group: Group, settings: TrialSettings, data: SplitData[np.ndarray], placement: Placement
) -> GroupState:
    """The group's model built from each member's seeded solo model, its optimizer and the members'
    shuffling orders."""
    members = member_specs(group, settings.seed)
    memory_format = torch.channels_last if placement.channels_last else torch.contiguous_format
    on_device = data.to(placement.device, memory_format=memory_format)
    model = build_fused_model(settings, members, on_device).to(placement.device)
    optimizer = MemberOptimizer(
        [param for param in model.parameters() if param.requires_grad],
        members,
        name=settings.optimizer,
    )
    generators = [torch.Generator().manual_seed(member.shuffle_seed) for member in members]
    return GroupState(model, optimizer, generators, on_device)


class FrozenMember:
    """A member stopped mid-epoch by an alert: its state at that step, put back at the epoch's end,
    as if, like its solo trial, it had stopped training there."""

    def __init__(self, state: GroupState, position: int) -> None:
        self.position = position
        self.tensors = [
            tensor.detach()[position].clone() for tensor in _member_tensors(state.model)
        ]
        self.optimizer = state.optimizer.member_state(position)

    def put_back(self, state: GroupState) -> None:
        with torch.no_grad():
            for tensor, saved in zip(_member_tensors(state.model), self.tensors, strict=True):
                tensor[self.position] = saved
        state.optimizer.set_member_state(self.position, self.optimizer)


def _member_tensors(model: FusedModel) -> list[torch.Tensor]:
    """Every parameter and saved buffer: each has the member dimension first."""
    return list(model.state_dict(keep_vars=True).values())


def train_group_epoch(
    state: GroupState, *, batch_size: int, diagnostics: Diagnostics | None, placement: Placement
) -> dict[str, list[float]]:
    """One pass over the training split for every member; each member's train_loss and train_acc, in
    member order."""
    model, data, members = state.model, state.data, len(state.members)
    model.train()
    device = placement.device
    orders = torch.stack(
        [torch.randperm(len(data.train_y), generator=generator) for generator in state.generators]
    ).to(device)
    loss_sum = torch.zeros(members, device=device)
    correct = torch.zeros(members, device=device)
    seen = torch.zeros(members, device=device)
    counting = torch.ones(members, device=device)  # 0 for a member once an alert stopped it
    frozen: list[FrozenMember] = []
    for start in range(0, len(data.train_y), batch_size):
        idx = orders[:, start : start + batch_size]
        if idx.shape[1] == 1 and batch_size > 1:
            break  # as batch_indices: batch norm cannot normalize one example
        x, y = model.gather(data, idx), data.train_y[idx]
        if placement.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = placement.forward(model, x)
        losses = (
            F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            .view(members, -1)
            .mean(dim=1)
        )
        state.optimizer.zero_grad()
        losses.sum().backward()
        measured = diagnostics is not None and diagnostics.before_step()
        state.optimizer.step()
        loss_sum += losses.detach() * idx.shape[1] * counting
        correct += (logits.detach().argmax(2) == y).sum(dim=1) * counting
        seen += idx.shape[1] * counting
        if measured and diagnostics is not None:
            for position in diagnostics.after_step(losses.detach()):
                frozen.append(FrozenMember(state, position))
                counting[position] = 0
            if len(frozen) == members:
                break
    for member in frozen:
        member.put_back(state)
    return {"train_loss": (loss_sum / seen).tolist(), "train_acc": (correct / seen).tolist()}


@torch.no_grad()
def evaluate_group(
    model: FusedModel,
    data: SplitData[torch.Tensor],
    *,
    placement: Placement,
    batch_size: int = 1024,
) -> dict[str, list[float]]:
    """Every member's val_loss and val_acc on the whole validation split, in member order."""
    model.eval()
    members = len(model.members)
    loss_sum = torch.zeros(members, device=placement.device)
    correct = torch.zeros(members, device=placement.device)
    for start in range(0, len(data.val_y), batch_size):
        x, y = (
            data.inputs(data.val_x[start : start + batch_size]),
            data.val_y[start : start + batch_size],
        )
        shared = model.shared(x)
        if placement.channels_last:
            shared = shared.contiguous(memory_format=torch.channels_last)
        logits = placement.forward(model, shared)
        targets = y.expand(members, -1)
        loss_sum += (
            F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
            .view(members, -1)
            .sum(dim=1)
        )
        correct += (logits.argmax(2) == targets).sum(dim=1)
    count = len(data.val_y)
    return {"val_loss": (loss_sum / count).tolist(), "val_acc": (correct / count).tolist()}


def group_epoch_metrics(
    state: GroupState, epoch: int, *, diagnostics: Diagnostics | None, placement: Placement
) -> tuple[dict[str, Metrics], dict[str, dict[str, Any]] | None]:
    """Each member's metrics for the epoch (`stop_reason` among them for one that must end), and its
    diagnostics."""
    batch_size = state.members[0].params["batch_size"]
    trained = train_group_epoch(
        state, batch_size=batch_size, diagnostics=diagnostics, placement=placement
    )
    keys = [member.key for member in state.members]
    member_diagnostics = None
    if diagnostics is not None:
        member_diagnostics = diagnostics.end_epoch(
            epoch, dict(zip(keys, trained["train_loss"], strict=True))
        )
    evaluated = evaluate_group(state.model, state.data, placement=placement)
    metrics: dict[str, Metrics] = {}
    for position, key in enumerate(keys):
        trained_here = {name: values[position] for name, values in trained.items()}
        evaluated_here = {name: values[position] for name, values in evaluated.items()}
        stop_reason = diagnostics.stop_reasons.get(key) if diagnostics is not None else None
        num_classes = state.data.num_classes
        metrics[key] = epoch_metrics(
            trained_here,
            evaluated_here,
            stop_reason=stop_reason,
            num_classes=num_classes,
            epoch=epoch,
        )
    return metrics, member_diagnostics


def run_group_training(
    group: Group,
    settings: TrialSettings,
    data: SplitData[np.ndarray],
    report: Callable[[dict[str, Any], dict[str, Any] | None], None],
    *,
    decide: Decide | None = None,
    resume_from: dict[str, Any] | None = None,
) -> None:
    """Train a group for up to `settings.epochs`, calling `report(metrics, checkpoint)` each epoch.

    `metrics` holds `members` (JSON: each training member's metrics this epoch), `ended`
    (JSON: every member that has ended, with its last epoch's metrics), `active` (the
    members still training) and `diagnostics` (each member's). Checkpoints follow
    run_training's cadence, are taken after this epoch's ended members left, and always at
    the group's end; passing one back as `resume_from` continues exactly where it left off.
    """
    torch.set_num_threads(settings.threads)
    placement = resolve_placement(settings)
    state = build_group_state(group, settings, data, placement)
    if resume_from is not None:
        state.restore(resume_from)
    batch_size = state.members[0].params["batch_size"] if state.members else 1
    diagnostics = start_diagnostics(
        MeasuredGroup(state.model),
        state.data,
        settings,
        epochs_done=state.next_epoch - 1,
        batch_size=batch_size,
    )
    last_checkpoint_at = time.monotonic()
    for epoch in range(state.next_epoch, settings.epochs + 1):
        if not state.members:
            return
        metrics, member_diagnostics = group_epoch_metrics(
            state, epoch, diagnostics=diagnostics, placement=placement
        )
        staying = end_members(state, metrics, epoch, epochs=settings.epochs, decide=decide)
        if len(staying) < len(state.members):
            state.keep(staying)
            if diagnostics is not None:
                diagnostics.bind()
        now = time.monotonic()
        due = (
            epoch % settings.checkpoint_every == 0
            and now - last_checkpoint_at >= settings.checkpoint_min_interval_s
        )
        checkpoint = None
        if due or epoch == settings.epochs or not state.members:
            last_checkpoint_at = now
            checkpoint = state.checkpoint(epoch)
        active = [member.index for member in state.members]
        group_report = GroupReport(
            epoch,
            members=metrics,
            ended=dict(state.ended),
            active=active,
            diagnostics=member_diagnostics,
        )
        report(group_report.as_result(), checkpoint)


def end_members(
    state: GroupState,
    metrics: dict[str, Metrics],
    epoch: int,
    *,
    epochs: int,
    decide: Decide | None,
) -> list[int]:
    """Record in `state.ended` the members that end after this epoch; the positions of those that
    stay."""
    ends_itself = [
        epoch >= epochs or "stop_reason" in metrics[member.key] for member in state.members
    ]
    stopped = [False] * len(state.members)
    if decide is not None:
        # In sampling order, as the unfused sweep's trials reach a rung: asynchronous early stopping
        # depends on the order (the first at a rung has no one to fall behind), and training order
        # would put one activation's members all first.
        order = sorted(
            range(len(state.members)), key=lambda position: state.members[position].index
        )
        decided = decide(
            [
                (
                    state.members[position].index,
                    epoch,
                    metrics[state.members[position].key],
                    ends_itself[position],
                )
                for position in order
            ]
        )
        for position, stop in zip(order, decided, strict=True):
            stopped[position] = stop
    staying = []
    for position, member in enumerate(state.members):
        if stopped[position] and not ends_itself[position]:
            metrics[member.key]["early_stopped"] = True
        if stopped[position] or ends_itself[position]:
            state.ended[member.key] = {"epoch": epoch, **metrics[member.key]}
        else:
            staying.append(position)
    return staying
