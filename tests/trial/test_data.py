"""Data sets and preprocessing: every loader, training-only statistics, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sweeps.trial import preprocessing
from sweeps.trial.data import DATASETS, DataError, DataSpec, load_split
from sweeps.trial.preprocessing import PREPROCESSORS

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def fake_mnist(folder: Path, *, gz: bool, count: int = 50) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    write_idx(
        folder / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, size=(count, 28, 28))
    )
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", np.arange(count) % 10)


def split(spec: DataSpec, preprocess: str = "none", **options):
    return load_split(spec, val_fraction=0.2, preprocess=preprocess, seed=0, **options).to(
        torch.device("cpu")
    )


@pytest.mark.parametrize(("layout", "gz"), [("flat", True), ("torchvision", False)])
def test_mnist_format_from_a_flat_folder_or_torchvision_layout(tmp_path, layout, gz):
    fake_mnist(tmp_path if layout == "flat" else tmp_path / "FashionMNIST" / "raw", gz=gz)
    data = split(DataSpec("fashion_mnist", root=str(tmp_path)))
    assert data.input_shape == (1, 28, 28)
    assert len(data.train_y) + len(data.val_y) == 50
    assert data.num_classes == 10
    assert data.train_x.dtype == torch.uint8 and data.full_scale == 255
    inputs = data.inputs(data.train_x)
    assert inputs.dtype == torch.float32 and 0 <= inputs.min() and inputs.max() <= 1


def test_missing_files_name_the_root_field(tmp_path):
    with pytest.raises(DataError, match="no mnist files") as raised:
        split(DataSpec("mnist", root=str(tmp_path)))
    assert raised.value.field == "data.root"


def test_image_folder_one_class_per_subfolder(tmp_path):
    for label, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / label).mkdir()
        for index in range(5):
            Image.new("RGB", (40, 30), colour).save(tmp_path / label / f"{index}.png")
    data = split(DataSpec("image_folder", root=str(tmp_path), image_size=16))
    assert data.input_shape == (3, 16, 16)
    assert data.num_classes == 2
    reds = data.inputs(data.train_x[data.train_y == 0])
    assert torch.allclose(reds[:, 0], torch.ones_like(reds[:, 0]))  # class 0 is `cats`, all red
    assert torch.all(reds[:, 1:] == 0)


def test_synthetic_has_the_configured_shape_and_classes():
    data = split(DataSpec("synthetic", num_examples=100, num_classes=3, shape=(3, 12, 12)))
    assert data.input_shape == (3, 12, 12)
    assert set(data.train_y.tolist()) | set(data.val_y.tolist()) == {0, 1, 2}


def test_digits_read_from_scikit_learns_file_are_the_images_it_loads():
    from sklearn.datasets import load_digits as sklearn_digits

    from sweeps.trial.data import _bundled_digits_table, load_digits

    # the fast path, not the fallback, is what is compared
    assert _bundled_digits_table() is not None
    images, labels, full_scale = load_digits(DataSpec("digits"))
    bunch = sklearn_digits()
    # whole numbers 0..16, as bytes
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.uint8 and full_scale == 16
    assert np.array_equal(images[:, 0], bunch.images)
    assert np.array_equal(labels, bunch.target)


def test_max_examples_keeps_a_deterministic_subset():
    first = split(DataSpec("digits"), max_examples=100)
    assert len(first.train_y) + len(first.val_y) == 100
    assert torch.equal(first.val_x, split(DataSpec("digits"), max_examples=100).val_x)


def test_classes_keeps_those_classes_relabelled_in_the_order_given():
    everything = load_split(DataSpec("digits"), val_fraction=0.2, preprocess="none", seed=0)
    kept = load_split(
        DataSpec("digits"), val_fraction=0.2, preprocess="none", seed=0, classes=[7, 3]
    )
    assert kept.num_classes == 2
    assert set(kept.train_y.tolist()) == set(kept.val_y.tolist()) == {0, 1}
    sevens = np.concatenate(
        [everything.train_x[everything.train_y == 7], everything.val_x[everything.val_y == 7]]
    )
    assert len(kept.train_y) + len(kept.val_y) == sum(
        (labels == label).sum()
        for labels in (everything.train_y, everything.val_y)
        for label in (7, 3)
    )
    # Label 0 is the first class listed: the sevens, every one of them and nothing else.
    kept_sevens = np.concatenate([kept.train_x[kept.train_y == 0], kept.val_x[kept.val_y == 0]])
    assert sorted(map(bytes, kept_sevens)) == sorted(map(bytes, sevens))


def test_a_class_the_data_set_lacks_names_the_field():
    with pytest.raises(DataError, match="digits has no class 12") as raised:
        load_split(DataSpec("digits"), val_fraction=0.2, preprocess="none", seed=0, classes=[1, 12])
    assert raised.value.field == "data.classes"


FITTED = sorted(set(PREPROCESSORS) - {"backbone"})  # backbone's statistics are stated, not fitted


@pytest.mark.parametrize("preprocess", FITTED)
def test_statistics_come_from_the_training_split_only(preprocess):
    raw = split(DataSpec("synthetic"), "none")
    data = split(DataSpec("synthetic"), preprocess)
    raw_train, raw_val = raw.inputs(raw.train_x), raw.inputs(raw.val_x)
    mean = (
        raw_train.mean(dim=0, keepdim=True)
        if preprocess == "mean_image"
        else raw_train.mean(dim=(0, 2, 3), keepdim=True)
    )
    std = raw_train.std(dim=(0, 2, 3), keepdim=True)
    expected_val = {
        "none": raw_val,
        "mean_image": raw_val - mean,
        "per_channel_mean": raw_val - mean,
        "standardize": (raw_val - mean) / std,
    }[preprocess]
    # Validation images are transformed with the training statistics, exactly...
    assert torch.allclose(data.inputs(data.val_x), expected_val, atol=1e-5)
    # ...so the training split is centred and the validation split, in general, is not.
    if preprocess != "none":
        assert data.inputs(data.train_x).mean(dim=(0, 2, 3)).abs().max() < 1e-4
        val_mean = raw_val.mean(dim=(0, 2, 3), keepdim=True)
        assert not torch.allclose(
            data.stats["mean"].mean(dim=(2, 3), keepdim=True), val_mean, atol=1e-4
        )


def image_folder(root: Path, *, per_class: int = 6) -> Path:
    """Photos of three classes in a person's folder layout: noisy colours, varied sizes."""
    rng = np.random.default_rng(1)
    for label, colour in enumerate(((200, 30, 30), (30, 160, 40), (20, 40, 220))):
        (root / f"class_{label}").mkdir(parents=True)
        for index in range(per_class):
            size = (int(rng.integers(20, 50)), int(rng.integers(20, 50)))
            pixels = np.clip(
                np.asarray(colour) + rng.normal(0, 40, size=(size[1], size[0], 3)), 0, 255
            ).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class_{label}" / f"{index}.png")
    return root


@pytest.mark.parametrize("preprocess", FITTED)
@pytest.mark.parametrize("source", ["digits", "mnist", "image_folder"])
def test_stored_bytes_give_the_inputs_float_images_gave(tmp_path, source, preprocess):
    """8-bit storage with per-batch conversion equals what the float pipeline fed models
    (images scaled to [0, 1] as float32, float32 statistics, normalized on the CPU)."""
    if source == "mnist":
        fake_mnist(tmp_path, gz=False)
    spec = DataSpec(
        source,
        root=str(image_folder(tmp_path / "photos") if source == "image_folder" else tmp_path),
        image_size=16,
    )
    data = split(spec, preprocess)
    # bytes on the device
    assert data.train_x.dtype == torch.uint8 and data.val_x.dtype == torch.uint8
    images, _, full_scale = DATASETS[source](spec)
    floats = images.astype(np.float32) / np.float32(full_scale)
    train, val = (torch.from_numpy(floats[index]) for index in _split_indices(len(images)))
    stats = {
        "none": {},
        "mean_image": {"mean": train.mean(0, keepdim=True)},
        "per_channel_mean": {"mean": train.mean((0, 2, 3), keepdim=True)},
        "standardize": {
            "mean": train.mean((0, 2, 3), keepdim=True),
            "std": train.std((0, 2, 3), keepdim=True),
        },
    }[preprocess]
    expected = (val - stats.get("mean", 0)) / stats.get("std", 1)
    assert torch.allclose(data.inputs(data.val_x), expected, atol=1e-6, rtol=1e-5)
    for name, value in stats.items():
        assert torch.allclose(data.stats[name], value, atol=1e-6)


def _split_indices(count: int):
    from sweeps.trial.data import split_indices

    return split_indices(count, val_fraction=0.2, seed=0)


def test_statistics_fitted_a_chunk_at_a_time_equal_one_pass(monkeypatch):
    whole = split(DataSpec("digits"), "standardize")
    # 7 digits per chunk: many chunks and a ragged last one
    monkeypatch.setattr(preprocessing, "CHUNK_VALUES", 64 * 7)
    chunked = split(DataSpec("digits"), "standardize")
    for name in ("mean", "std"):
        assert torch.allclose(whole.stats[name], chunked.stats[name], rtol=1e-6)


@pytest.mark.skipif(
    not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist package is not installed"
)
def test_debian_fashion_mnist_loads():
    data = split(DataSpec("fashion_mnist", root=str(FASHION_MNIST)), max_examples=1000)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10


def test_moving_a_split_to_a_device_carries_every_field():
    """SplitData.to() names every field (its arrays change type, which replace() cannot say):
    a field added to SplitData must be carried there too, and this list updated with it."""
    import dataclasses

    import torch

    from sweeps.trial.data import SplitData

    names = [field.name for field in dataclasses.fields(SplitData)]
    assert names == [
        "train_x",
        "train_y",
        "val_x",
        "val_y",
        "num_classes",
        "preprocess",
        "stats",
        "full_scale",
        "inputs_ready",
        "affine",
    ], "SplitData gained or lost a field: carry it in SplitData.to() and update this list"
    split = load_split(DataSpec("digits"), val_fraction=0.2, preprocess="per_channel_mean", seed=0)
    moved = split.to(torch.device("cpu"))
    for name in ("num_classes", "preprocess", "full_scale", "inputs_ready"):
        assert getattr(moved, name) == getattr(split, name)
    assert moved.stats.keys() == split.stats.keys() and moved.affine is not None
