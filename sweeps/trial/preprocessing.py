"""Preprocessing statistics, fitted on the training split's stored pixels a chunk at a time.

Images stay as stored (8-bit where the source is) from loading to the trial's device;
a trial turns each batch into floats and normalizes it there (SplitData.inputs). The
statistics are in the units of an image scaled to [0, 1], whatever the storage, so a
checkpoint's statistics read the same for 8-bit and float data. numpy only: the
sweep file's schema reads the registry's names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

# Pixels converted to float64 at a time while fitting: 32 MB, so fitting never holds an
# 8-bit data set as floats whole (20,000 photos at 224x224 would be 24 GB of float64).
CHUNK_VALUES = 2**22
STD_FLOOR = 1e-6  # a constant channel (e.g. a blank border) must not divide by zero


class StatisticsError(ValueError):
    """Statistics that cannot be fitted as configured; names the field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Normalization:
    """A per-channel mean and std stated outright: a backbone's own, in [0, 1] units."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


class PixelMoments:
    """Means and spreads of training images (N, C, H, W) scaled by 1/full_scale, in float64."""

    def __init__(self, images: np.ndarray, full_scale: float) -> None:
        self.images = images
        self.full_scale = full_scale
        self.rows = max(1, CHUNK_VALUES // max(1, int(np.prod(images.shape[1:]))))
        self._image_mean: np.ndarray | None = None

    def _chunks(self) -> Iterator[np.ndarray]:
        for start in range(0, len(self.images), self.rows):
            chunk = self.images[start : start + self.rows].astype(np.float64)
            chunk /= self.full_scale  # in place: one chunk of floats at a time, never two
            yield chunk

    def image_mean(self) -> np.ndarray:
        """The mean training image, (1, C, H, W)."""
        if self._image_mean is None:
            total = sum(chunk.sum(axis=0, keepdims=True) for chunk in self._chunks())
            self._image_mean = total / len(self.images)
        return self._image_mean

    def channel_mean(self) -> np.ndarray:
        """Each channel's mean over every training pixel, (1, C, 1, 1)."""
        return self.image_mean().mean(axis=(2, 3), keepdims=True)

    def channel_std(self) -> np.ndarray:
        """Each channel's standard deviation (ddof=1, as torch.std), (1, C, 1, 1); two passes, as
        numpy's."""
        mean = self.channel_mean()
        squares = sum(
            np.square(np.subtract(chunk, mean, out=chunk), out=chunk).sum(
                axis=(0, 2, 3), keepdims=True
            )
            for chunk in self._chunks()
        )
        count = self.images.size // self.images.shape[1]
        return np.sqrt(squares / max(1, count - 1))


def _channels(values: tuple[float, ...], channels: int) -> np.ndarray:
    """(1, C', 1, 1) from one value per channel; a single value serves every channel."""
    return np.asarray(values if len(values) > 1 else values * channels, dtype=np.float64).reshape(
        1, -1, 1, 1
    )


def _backbone(moments: PixelMoments, normalization: Normalization | None) -> dict[str, np.ndarray]:
    if normalization is None:
        raise StatisticsError(
            "data.preprocess",
            "backbone needs the weights' normalization: state it as data.normalization",
        )
    channels = moments.images.shape[1]
    given = len(normalization.mean)
    # A grayscale image normalized with an RGB backbone's three means becomes the three
    # channels the backbone expects (broadcasting repeats it), as torchvision's
    # Grayscale(3) followed by the weights' Normalize would.
    if given not in (1, channels) and not (channels == 1 and given == 3):
        raise StatisticsError(
            "data.normalization",
            f"has {given} values per field; the images have {channels} channels",
        )
    return {
        "mean": _channels(normalization.mean, channels),
        "std": _channels(normalization.std, channels),
    }


# Each preprocessor's statistics, from the training images' moments (or stated outright).
PREPROCESSORS: dict[str, Callable[[PixelMoments, Normalization | None], dict[str, np.ndarray]]] = {
    "none": lambda moments, normalization: {},
    "mean_image": lambda moments, normalization: {"mean": moments.image_mean()},
    "per_channel_mean": lambda moments, normalization: {"mean": moments.channel_mean()},
    "standardize": lambda moments, normalization: {
        "mean": moments.channel_mean(),
        "std": np.maximum(moments.channel_std(), STD_FLOOR),
    },
    # the pretrained weights' own normalization (ImageNet's for torchvision's)
    "backbone": _backbone,
}


def fit_preprocessing(
    name: str,
    train_x: np.ndarray,
    *,
    full_scale: float = 1.0,
    normalization: Normalization | None = None,
) -> dict[str, np.ndarray]:
    """The float32 statistics preprocessing `name` needs, from training images only (stored
    values divided by `full_scale` are in [0, 1]); `backbone` takes `normalization` instead."""
    try:
        fit = PREPROCESSORS[name]
    except KeyError:
        raise ValueError(
            f"unknown preprocess {name!r}; choose from {sorted(PREPROCESSORS)}"
        ) from None
    stats = fit(PixelMoments(train_x, full_scale), normalization)
    return {key: value.astype(np.float32) for key, value in stats.items()}
