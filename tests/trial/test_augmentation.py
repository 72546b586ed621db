"""data.augment: flips and pad-and-crop on the device per batch, seeded per trial, resumable from a
checkpoint."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from sweeps.trial.augmentation import AUGMENTATIONS, BatchAugmenter, padding_for
from sweeps.trial.training import run_training
from tests.conftest import digits, trial_settings


def images(count: int = 16, size: int = 8) -> torch.Tensor:
    return torch.randint(
        1,
        256,
        (count, 3, size, size),
        generator=torch.Generator().manual_seed(0),
        dtype=torch.int32,
    ).to(torch.uint8)


def explain(original: torch.Tensor, augmented: torch.Tensor, pad: int) -> tuple[bool, int, int]:
    """(flipped, top, left) of a crop of the zero-padded image, possibly mirrored, that equals
    `augmented`."""
    padded = F.pad(original, (pad,) * 4)
    height, width = original.shape[-2:]
    for flipped in (False, True):
        for top in range(2 * pad + 1):
            for left in range(2 * pad + 1):
                crop = padded[:, top : top + height, left : left + width]
                if torch.equal(crop.flip(-1) if flipped else crop, augmented):
                    return flipped, top, left
    raise AssertionError("not a crop of the padded image, flipped or not")


@pytest.mark.parametrize("name", ["flip", "crop_flip"])
def test_each_image_is_a_random_crop_of_its_padded_self_maybe_mirrored(name):
    batch = images()
    augmented = BatchAugmenter(name, seed=0)(batch)
    assert augmented.dtype == torch.uint8 and augmented.shape == batch.shape  # still stored bytes
    pad = padding_for(AUGMENTATIONS[name], 8, 8)
    assert pad == (1 if name == "crop_flip" else 0)
    found = [explain(original, out, pad) for original, out in zip(batch, augmented, strict=True)]
    assert {flipped for flipped, _, _ in found} == {False, True}  # both happen in 16 images
    if name == "crop_flip":
        assert len({(top, left) for _, top, left in found}) > 1


def test_crop_padding_is_an_eighth_of_the_side():
    assert padding_for(AUGMENTATIONS["crop_flip"], 32, 32) == 4  # CIFAR-10's classic 4 px
    assert padding_for(AUGMENTATIONS["crop_flip"], 224, 224) == 28


def test_the_stream_is_seeded_per_trial_and_continues_from_its_saved_state():
    batch = images()
    first, again, other = (
        BatchAugmenter("crop_flip", seed=1),
        BatchAugmenter("crop_flip", seed=1),
        BatchAugmenter("crop_flip", seed=2),
    )
    assert torch.equal(first(batch), again(batch))
    assert not torch.equal(first(batch), other(batch))
    saved = first.state()
    expected = first(batch)
    resumed = BatchAugmenter("crop_flip", seed=99)
    resumed.restore(saved)
    assert torch.equal(resumed(batch), expected)


def test_channels_last_batches_stay_channels_last():
    batch = images().contiguous(memory_format=torch.channels_last)
    assert BatchAugmenter("crop_flip", seed=0)(batch).is_contiguous(
        memory_format=torch.channels_last
    )


def without_diagnostics(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key != "diagnostics"}


def test_an_augmented_trial_resumes_exactly_and_differs_from_an_unaugmented_one():
    sweep = {
        "model": {"hidden": [32]},
        "train": {"epochs": 4, "checkpoint_every": 2, "checkpoint_min_interval_s": 0},
        "data": {"augment": "crop_flip"},
    }
    settings = trial_settings(sweep)
    params = {"lr": 0.05}
    straight, checkpoints = [], {}

    def record(metrics, checkpoint):
        straight.append(metrics)
        if checkpoint is not None:
            checkpoints[metrics["epoch"]] = copy.deepcopy(checkpoint)

    run_training(params, settings, digits(), record)
    resumed = []
    run_training(
        params,
        settings,
        digits(),
        lambda metrics, _: resumed.append(metrics),
        resume_from=checkpoints[2],
    )
    # The augmentation stream went on where it stopped. (Not the diagnostics: an update-ratio
    # streak toward an alert is not checkpointed, so a resumed trial may alert later.)
    assert [without_diagnostics(metrics) for metrics in resumed] == [
        without_diagnostics(metrics) for metrics in straight[2:]
    ]

    plain = []
    run_training(
        params,
        trial_settings({**sweep, "data": {"augment": "none"}}),
        digits(),
        lambda metrics, _: plain.append(metrics),
    )
    assert plain[0]["train_loss"] != straight[0]["train_loss"]
    assert (
        plain[0]["val_acc"] != straight[0]["val_acc"]
        or plain[-1]["val_acc"] != straight[-1]["val_acc"]
    )
