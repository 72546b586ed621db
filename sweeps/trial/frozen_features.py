"""Frozen features: a pretrained backbone's frozen prefix run once over the data, and trials that
train on its output.

With `trainable_layers: 0` (a linear probe) or a few, most of every epoch is the frozen
part of the backbone recomputing what it computed the epoch before. Its output depends
on the image alone (frozen weights, batch norm in eval mode), so it is computed once
per distinct frozen prefix and a trial trains only what follows it. Two checks decide
whether a prefix is cached: its output is no larger than the image the backbone sees
(else the cache would hold more than the images), and the model cut after it gives the
whole model's logits (torchvision's forward passes must be their children in order).

torch is imported inside the functions: the driver hands these to Ray without loading it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from sweeps.trial.data import ArrayT, SplitData
from sweeps.trial_params import resolve_trial_params
from sweeps.trial_settings import TrialSettings

if TYPE_CHECKING:
    import torch
    from torch import nn

    from models.pretrained import Pretrained

BATCH = 128  # images per forward pass when computing features
CHECK_IMAGES = 8  # images the cut model is compared with the whole one on


@dataclass(frozen=True)
class FrozenFeatures:
    """The frozen prefix's output for every training and validation image, float32 on the CPU."""

    frozen_prefix: int  # leading backbone children these features replace
    train_x: np.ndarray
    val_x: np.ndarray

    def replacing_images(self, data: SplitData[np.ndarray]) -> SplitData[np.ndarray]:
        """`data` with these features where its images were: labels, classes and statistics stay."""
        return replace(data, train_x=self.train_x, val_x=self.val_x, inputs_ready=True, affine=None)


@dataclass(frozen=True)
class CacheDecision:
    """Whether the frozen prefix of a trial with `trainable_layers` is cached, and in words why."""

    trainable_layers: int
    # leading backbone children that nothing in them trains: the same prefix, the same features
    frozen_prefix: int
    cached: bool
    # what is cached ("conv1 to avgpool of resnet18 frozen, 512 numbers per image"), or why not
    reason: str

    def line(self) -> str:
        return (
            f"trainable_layers={self.trainable_layers}: "
            f"{'cached' if self.cached else 'not cached'}, {self.reason}"
        )


def _pretrained_model(
    settings: TrialSettings, data: SplitData[ArrayT], trainable_layers: int
) -> Pretrained:
    """The model a trial with `trainable_layers` builds: frozen features are for pretrained ones."""
    from models.pretrained import Pretrained
    from sweeps.trial.building import build_trial_model

    model = build_trial_model(
        settings, resolve_trial_params({"trainable_layers": trainable_layers}), data
    )
    assert isinstance(model, Pretrained), "frozen features need model.arch: pretrained"
    return model


def decide(
    settings: TrialSettings, data: SplitData[ArrayT], trainable_layers: int
) -> tuple[CacheDecision, Pretrained]:
    """Build the trial's model for `trainable_layers` and decide on a few images whether its prefix
    is cached."""
    import torch

    model = _pretrained_model(settings, data, trainable_layers).eval()
    names = [name for name, _ in model.backbone.named_children()]
    prefix = model.frozen_prefix

    def decision(cached: bool, reason: str) -> tuple[CacheDecision, Pretrained]:
        return CacheDecision(trainable_layers, prefix, cached, reason), model

    if settings.model_options["weights"] is None:
        return decision(
            False,
            "without weights each trial's frozen backbone is a random initialization of its own",
        )
    if prefix == 0:
        return decision(
            False,
            f"{names[0]}, the backbone's first block, trains: nothing in front of it is frozen",
        )
    on_cpu = data.to(torch.device("cpu"))
    images = on_cpu.inputs(on_cpu.train_x[:CHECK_IMAGES])
    features = model.frozen_features(images)
    size, image_size = features[0].numel(), model.backbone_input(images)[0].numel()
    frozen = (
        f"{names[0]} to {names[prefix - 1]} of {settings.model_options['backbone']}"
        if prefix > 1
        else names[0]
    )
    if size > image_size:
        return decision(
            False,
            f"{frozen} gives {size} numbers per image, more than the {image_size} of the image "
            "the backbone sees",
        )
    cut = copy.deepcopy(model)
    cut.cut_frozen_prefix()
    with torch.no_grad():
        try:
            same = torch.allclose(model(images), cut(features), rtol=1e-4, atol=1e-5)
        except (
            RuntimeError,
            ValueError,
        ):  # a functional step between children met features of the wrong shape
            same = False
    if not same:
        return decision(
            False,
            f"{settings.model_options['backbone']}'s forward pass is not its blocks in order, "
            f"so it cannot start after {names[prefix - 1]}",
        )
    return decision(True, f"{frozen} frozen, {size} numbers per image")


def decide_all(
    settings: TrialSettings, data: SplitData[ArrayT], values: list[int]
) -> list[CacheDecision]:
    """Whether each trainable_layers value's frozen prefix is cached (what `sweep check` prints)."""
    import torch

    torch.set_num_threads(settings.threads)
    return [decide(settings, data, value)[0] for value in values]


def compute_frozen_features(
    settings: TrialSettings, data: SplitData[ArrayT], trainable_layers: int
) -> FrozenFeatures:
    """One pass of the frozen prefix of a trial with `trainable_layers` over every image, in
    eval mode, on the device (and in the precision) a trial of the sweep would train on."""
    import torch

    from sweeps.trial.building import resolve_placement

    torch.set_num_threads(settings.threads)
    placement = resolve_placement(settings)
    model = _pretrained_model(settings, data, trainable_layers)
    model.eval().to(placement.device)
    on_device = data.to(placement.device)

    def run(images: torch.Tensor) -> np.ndarray:
        batches = [
            placement.forward(
                model.frozen_features, on_device.inputs(images[start : start + BATCH])
            )
            .float()
            .cpu()
            for start in range(0, len(images), BATCH)
        ]
        return torch.cat(batches).numpy()

    return FrozenFeatures(model.frozen_prefix, run(on_device.train_x), run(on_device.val_x))


def sized_frozen_features(
    settings: TrialSettings, data: SplitData[ArrayT], trainable_layers: int
) -> tuple[int, FrozenFeatures]:
    """(their size in bytes, the features): a Ray task's two returns, so the driver learns
    the first, or the task's error, without fetching the second."""
    features = compute_frozen_features(settings, data, trainable_layers)
    return features.train_x.nbytes + features.val_x.nbytes, features


def train_on_features(
    model: nn.Module, data: SplitData[np.ndarray], features: FrozenFeatures
) -> SplitData[np.ndarray]:
    """Cut the trial's model after its frozen prefix; the data it then trains on."""
    from models.pretrained import Pretrained

    assert isinstance(model, Pretrained), "frozen features need model.arch: pretrained"
    if model.frozen_prefix != features.frozen_prefix:
        raise RuntimeError(
            f"features replace {features.frozen_prefix} frozen children, the model has "
            f"{model.frozen_prefix}"
        )
    model.cut_frozen_prefix()
    return features.replacing_images(data)
