"""Data sets by name, the deterministic train/validation split, and preprocessing.

Loaded once per sweep by the driver and shipped to trials through Ray's object
store, so no trial reads from disk.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch


@dataclass(frozen=True)
class SplitData:
    """A preprocessed train/validation split, ready to index into batches."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    preprocess: str
    # Statistics from the training split only, applied identically to validation.
    stats: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), as (N, 1, 8, 8) floats in [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32)[:, None, :, :] / 16.0
    return images, bunch.target.astype(np.int64)


DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "digits": load_digits,
}


def _no_preprocessing(train_x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {}


def _per_channel_mean(train_x: torch.Tensor) -> dict[str, torch.Tensor]:
    # One mean per channel over every example and pixel, kept as (1, C, 1, 1) to broadcast.
    return {"mean": train_x.mean(dim=(0, 2, 3), keepdim=True)}


PREPROCESSORS: dict[str, Callable[[torch.Tensor], dict[str, torch.Tensor]]] = {
    "none": _no_preprocessing,
    "per_channel_mean": _per_channel_mean,
}


def fit_preprocessing(name: str, train_x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The statistics preprocessing `name` needs, computed from training images only."""
    try:
        fit = PREPROCESSORS[name]
    except KeyError:
        raise ValueError(f"unknown preprocess {name!r}; choose from {sorted(PREPROCESSORS)}") from None
    return fit(train_x)


def apply_preprocessing(x: torch.Tensor, stats: dict[str, torch.Tensor]) -> torch.Tensor:
    if "mean" in stats:
        x = x - stats["mean"]
    if "std" in stats:
        x = x / stats["std"]
    return x


def split_indices(num_examples: int, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled split that depends only on the size, fraction and seed."""
    order = np.random.default_rng(seed).permutation(num_examples)
    num_val = max(1, round(num_examples * val_fraction))
    return order[num_val:], order[:num_val]


def load_split(dataset: str, *, val_fraction: float, preprocess: str, seed: int) -> SplitData:
    """Load `dataset`, split it by `seed`, and preprocess with training-split statistics."""
    try:
        loader = DATASETS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {sorted(DATASETS)}") from None
    images, labels = loader()
    train_idx, val_idx = split_indices(len(labels), val_fraction=val_fraction, seed=seed)
    train_x, val_x = torch.from_numpy(images[train_idx]), torch.from_numpy(images[val_idx])
    stats = fit_preprocessing(preprocess, train_x)
    return SplitData(
        train_x=apply_preprocessing(train_x, stats).contiguous(),
        train_y=torch.from_numpy(labels[train_idx]),
        val_x=apply_preprocessing(val_x, stats).contiguous(),
        val_y=torch.from_numpy(labels[val_idx]),
        num_classes=int(labels.max()) + 1,
        preprocess=preprocess,
        stats=stats,
    )
