"""Data augmentation on the trial's device, a batch of stored images at a time, from a seeded
stream that a checkpoint carries (a resumed trial draws what the uninterrupted one would).

The registry's names are read by the sweep file's schema without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Augmentation:
    flip: bool  # mirror left to right, each image with probability 1/2
    # pad each side by this fraction of the image and crop back at a random offset; 0: no crop
    crop_padding: float


# data.augment -> what it does; CIFAR-10's classic recipe is crop_flip (4 px of padding at 32x32).
AUGMENTATIONS: dict[str, Augmentation] = {
    "none": Augmentation(flip=False, crop_padding=0.0),
    "flip": Augmentation(flip=True, crop_padding=0.0),
    "crop_flip": Augmentation(flip=True, crop_padding=1 / 8),
}


def padding_for(augmentation: Augmentation, height: int, width: int) -> int:
    """Pixels of zero (black) padding on each side: 1/8 of the shorter side, at least 1, for a
    crop."""
    return (
        max(1, round(min(height, width) * augmentation.crop_padding))
        if augmentation.crop_padding
        else 0
    )


class BatchAugmenter:
    """One trial's augmentation of (B, C, H, W) stored images, on whatever device they are.

    The random draws come from a CPU generator seeded per trial, a few numbers per image,
    so the stream is the same on any device; the pixels never leave the device.
    """

    def __init__(self, name: str, *, seed: int) -> None:
        import torch

        try:
            self.augmentation = AUGMENTATIONS[name]
        except KeyError:
            raise ValueError(
                f"unknown augment {name!r}; choose from {sorted(AUGMENTATIONS)}"
            ) from None
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        count, channels, height, width = images.shape
        pad = padding_for(self.augmentation, height, width)
        flips = (
            torch.rand(count, generator=self.generator) < 0.5
            if self.augmentation.flip
            else torch.zeros(count, dtype=torch.bool)
        )
        top = torch.randint(0, 2 * pad + 1, (count,), generator=self.generator)
        left = torch.randint(0, 2 * pad + 1, (count,), generator=self.generator)
        # One gather does crop and flip: each image's rows and (mirrored) columns in the padded
        # batch.
        rows = top[:, None] + torch.arange(height)
        columns = left[:, None] + torch.arange(width)
        columns = torch.where(flips[:, None], columns.flip(1), columns)
        padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
        device = images.device
        out = padded[
            torch.arange(count, device=device)[:, None, None, None],
            torch.arange(channels, device=device)[None, :, None, None],
            rows.to(device)[:, None, :, None],
            columns.to(device)[:, None, None, :],
        ]
        channels_last = (
            images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        )
        return out.contiguous(memory_format=torch.channels_last) if channels_last else out

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def restore(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
