"""Data sets by name, the deterministic train/validation split, and preprocessing.

Loaded once per sweep by the driver and shipped to trials through Ray's object
store, so no trial reads from disk. Images stay as stored, 8-bit where the source
is, from loading to the trial's device (a quarter of float32's memory in the
driver, the object store and every trial); each batch becomes floats and is
normalized there. Only the training split's statistics are used to preprocess,
and they are applied identically to validation images. The driver works in numpy
(it never imports torch for the data sets that need no torchvision); a trial turns
the arrays into tensors on its device, without a copy on the CPU.
"""

from __future__ import annotations

import gzip
import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

import numpy as np

from sweeps.errors import SweepError
from sweeps.trial.preprocessing import (
    Normalization,
    StatisticsError,
    fit_preprocessing,
)

if TYPE_CHECKING:
    import torch

# A split's arrays: numpy as the driver loads them, tensors once `to()` puts them on a device.
ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")


class DataError(SweepError):
    """A data set that cannot be loaded as configured (missing files, no download); names the
    field."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class DataSpec:
    """Where and how to load a data set; the `data:` section without its pydantic types."""

    dataset: str = "digits"
    root: str | None = None
    download: bool = False
    image_size: int = 64
    num_examples: int = 512
    num_classes: int = 4
    shape: tuple[int, int, int] = (3, 32, 32)


@dataclass(frozen=True)
class SplitData(Generic[ArrayT]):
    """A train/validation split, ready to index into batches: numpy arrays as the driver
    loads them, tensors once `to()` puts them on a device. Images are kept as stored;
    `inputs()` turns a batch of them into what the model takes."""

    train_x: ArrayT
    train_y: ArrayT
    val_x: ArrayT
    val_y: ArrayT
    num_classes: int
    preprocess: str
    # Statistics from the training split only, applied identically to validation; in the
    # units of an image scaled to [0, 1].
    stats: dict[str, ArrayT] = field(default_factory=dict)
    # the stored value of a full-intensity pixel: 255 for 8-bit images, 16 for digits, 1 for floats
    full_scale: float = 1.0
    # train_x and val_x are already model inputs (frozen features), not images
    inputs_ready: bool = False
    # inputs = stored * factor + offset, on the device (set by `to()`): scaling and normalization in
    # one.
    affine: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs from a batch of stored images on the device: floats (torch's default
        dtype, float32 unless a test asks for float64), scaled, normalized."""
        if self.inputs_ready:
            return x
        if self.affine is None:
            raise RuntimeError("SplitData.inputs needs the split on a device: call to() first")
        import torch

        factor, offset = self.affine
        return x.to(torch.get_default_dtype()) * factor + offset

    def to(
        self, device: torch.device, *, memory_format: torch.memory_format | None = None
    ) -> SplitData[torch.Tensor]:
        """This split as tensors on `device` (images in `memory_format`, default contiguous)."""
        import torch

        memory_format = torch.contiguous_format if memory_format is None else memory_format

        def move(array: np.ndarray | torch.Tensor, *, images: bool = False) -> torch.Tensor:
            if isinstance(array, np.ndarray):
                # Arrays from Ray's object store are read-only views of shared memory. A trial
                # never writes to its data, so it shares them rather than copy (torch warns).
                with warnings.catch_warnings():
                    warnings.filterwarnings(
                        "ignore", message="The given NumPy array is not writable"
                    )
                    array = torch.from_numpy(array)
            if images and array.ndim == 4:  # frozen features may be flat vectors
                return array.to(device, memory_format=memory_format)
            return array.to(device)

        stats = {name: move(value) for name, value in self.stats.items()}
        # Every field named, not replace(): the arrays change type, which replace() cannot say.
        return SplitData(
            train_x=move(self.train_x, images=True),
            train_y=move(self.train_y),
            val_x=move(self.val_x, images=True),
            val_y=move(self.val_y),
            num_classes=self.num_classes,
            preprocess=self.preprocess,
            stats=stats,
            full_scale=self.full_scale,
            inputs_ready=self.inputs_ready,
            affine=_affine(stats, self.full_scale, device),
        )


def _affine(
    stats: dict[str, torch.Tensor], full_scale: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(factor, offset) with stored * factor + offset == (stored / full_scale - mean) / std."""
    import torch

    one = torch.ones((), device=device)
    mean, std = stats.get("mean", 0 * one), stats.get("std", one)
    return 1 / (full_scale * std), -mean / std


class Images(NamedTuple):
    """A data set as loaded: (N, C, H, W) pixels as stored, (N,) int64 labels, and the value of a
    full-intensity pixel."""

    pixels: np.ndarray
    labels: np.ndarray
    full_scale: float


def load_digits(spec: DataSpec) -> Images:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes): whole numbers 0 to 16, kept as
    bytes."""
    table = _bundled_digits_table()
    if table is None:
        from sklearn.datasets import load_digits as sklearn_digits

        bunch = sklearn_digits()
        table = np.column_stack([bunch.data, bunch.target])
    return Images(
        table[:, :-1].astype(np.uint8).reshape(-1, 1, 8, 8), table[:, -1].astype(np.int64), 16.0
    )


def _bundled_digits_table() -> np.ndarray | None:
    """scikit-learn's digits.csv.gz (64 pixels and the label per row), read without
    importing scikit-learn, which costs a sweep's start most of a second."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return np.loadtxt(path, delimiter=",") if path.is_file() else None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
        data = file.read()
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_loader(torchvision_name: str) -> Callable[[DataSpec], Images]:
    """MNIST-format training files from `root`: flat (as Debian's dataset-fashion-mnist
    installs them) or in torchvision's `root/<Name>/raw/` layout, downloaded there on request."""

    def load(spec: DataSpec) -> Images:
        root = _require_root(spec)
        candidates = [root, root / torchvision_name / "raw"]

        def find(stem: str) -> Path | None:
            return next(
                (
                    folder / name
                    for folder in candidates
                    for name in (stem, f"{stem}.gz")
                    if (folder / name).is_file()
                ),
                None,
            )

        if find("train-images-idx3-ubyte") is None and spec.download:
            import torchvision

            getattr(torchvision.datasets, torchvision_name)(str(root), train=True, download=True)
        images_file, labels_file = find("train-images-idx3-ubyte"), find("train-labels-idx1-ubyte")
        if images_file is None or labels_file is None:
            raise DataError(
                "data.root",
                f"no {spec.dataset} files (train-images-idx3-ubyte[.gz], "
                f"train-labels-idx1-ubyte[.gz]) in {root} "
                f"or {root / torchvision_name / 'raw'}; set data.download: true on a machine "
                "with internet",
            )
        return Images(
            read_idx(images_file)[:, None, :, :], read_idx(labels_file).astype(np.int64), 255.0
        )

    return load


def load_cifar10(spec: DataSpec) -> Images:
    import torchvision

    root = _require_root(spec)
    try:
        dataset = torchvision.datasets.CIFAR10(str(root), train=True, download=spec.download)
    except RuntimeError as error:
        raise DataError(
            "data.root", f"{error} under {root}; set data.download: true on a machine with internet"
        ) from None
    return Images(
        np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)),
        np.asarray(dataset.targets, dtype=np.int64),
        255.0,
    )


def load_image_folder(spec: DataSpec) -> Images:
    """A person's own images, one sub-folder per class, resized to image_size x image_size as 8-bit
    RGB."""
    import torchvision
    from torchvision.transforms import v2

    root = _require_root(spec)
    size = spec.image_size
    # Resizing an 8-bit tensor image gives 8-bit pixels (antialiased, rounded).
    transform = v2.Compose([v2.ToImage(), v2.Resize((size, size))])
    try:
        dataset = torchvision.datasets.ImageFolder(
            str(root), transform=lambda image: transform(image.convert("RGB"))
        )
    except (FileNotFoundError, RuntimeError) as error:
        raise DataError("data.root", f"{error}") from None
    # Filled in place: no list of every image beside the stacked copy.
    pixels = np.empty((len(dataset), 3, size, size), dtype=np.uint8)
    for index, (image, _) in enumerate(dataset):
        pixels[index] = image.numpy()
    return Images(pixels, np.asarray(dataset.targets, dtype=np.int64), 255.0)


def load_synthetic(spec: DataSpec) -> Images:
    """Small generated images: one random template per class plus noise, learnable but not
    trivially."""
    rng = np.random.default_rng(0)
    templates = rng.uniform(0, 1, size=(spec.num_classes, *spec.shape)).astype(np.float32)
    labels = rng.integers(0, spec.num_classes, size=spec.num_examples)
    noise = rng.normal(0, 0.5, size=(spec.num_examples, *spec.shape)).astype(np.float32)
    return Images(np.clip(templates[labels] + noise, 0, 1), labels.astype(np.int64), 1.0)


DATASETS: dict[str, Callable[[DataSpec], Images]] = {
    "digits": load_digits,
    "mnist": _idx_loader("MNIST"),
    "fashion_mnist": _idx_loader("FashionMNIST"),
    "cifar10": load_cifar10,
    "image_folder": load_image_folder,
    "synthetic": load_synthetic,
}


def _require_root(spec: DataSpec) -> Path:
    if spec.root is None:
        raise DataError(
            "data.root", f"dataset {spec.dataset} needs data.root, the folder that holds it"
        )
    return Path(spec.root).expanduser()


def keep_classes(
    images: np.ndarray, labels: np.ndarray, classes: list[int], *, dataset: str
) -> tuple[np.ndarray, np.ndarray]:
    """Only the examples of `classes`, relabelled by their place in the list (transfer
    learning pretrains on some classes of a data set and fine-tunes on the others)."""
    missing = sorted(set(classes) - set(np.unique(labels).tolist()))
    if missing:
        raise DataError(
            "data.classes",
            f"{dataset} has no class {missing[0]}; its labels are 0 to {int(labels.max())}",
        )
    relabel = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    relabel[classes] = np.arange(len(classes))
    kept = np.flatnonzero(relabel[labels] >= 0)
    return images[kept], relabel[labels[kept]]


def split_indices(
    num_examples: int, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled split that depends only on the size, fraction and seed."""
    order = np.random.default_rng(seed).permutation(num_examples)
    num_val = max(1, round(num_examples * val_fraction))
    return order[num_val:], order[:num_val]


def load_split(
    spec: DataSpec,
    *,
    val_fraction: float,
    preprocess: str,
    seed: int,
    max_examples: int | None = None,
    normalization: Normalization | None = None,
    classes: list[int] | None = None,
) -> SplitData[np.ndarray]:
    """Load the data set, keep only `classes` (relabelled 0, 1, ... in that order) and at
    most `max_examples`, split by `seed`, fit the preprocessing on the training split
    (`normalization`: the backbone's own, for `backbone`); as numpy arrays, images as
    stored (`to()` makes them tensors, `inputs()` model inputs)."""
    try:
        loader = DATASETS[spec.dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {spec.dataset!r}; choose from {sorted(DATASETS)}"
        ) from None
    images, labels, full_scale = loader(spec)
    if classes is not None:
        images, labels = keep_classes(images, labels, classes, dataset=spec.dataset)
    if len(labels) < 2:
        raise DataError(
            "data.dataset", f"{spec.dataset} has {len(labels)} examples; a split needs at least 2"
        )
    train_idx, val_idx = split_indices(len(labels), val_fraction=val_fraction, seed=seed)
    if max_examples is not None and max_examples < len(labels):
        keep_val = max(1, round(max_examples * val_fraction))
        train_idx, val_idx = train_idx[: max_examples - keep_val], val_idx[:keep_val]
    train_x, val_x = images[train_idx], images[val_idx]
    try:
        stats = fit_preprocessing(
            preprocess, train_x, full_scale=full_scale, normalization=normalization
        )
    except StatisticsError as error:
        raise DataError(error.field, str(error)) from None
    return SplitData(
        train_x=train_x,
        train_y=labels[train_idx],
        val_x=val_x,
        val_y=labels[val_idx],
        num_classes=int(labels.max()) + 1,
        preprocess=preprocess,
        stats=stats,
        full_scale=full_scale,
    )
