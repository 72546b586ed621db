"""Transfer learning the way a person does it, offline: a backbone pretrained here on one half of
Fashion-MNIST's classes, fine-tuned by `sweep run` on a few hundred PNGs of the other half in a
folder per class, its frozen features cached, and the same sweep without caching agreeing with
it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sweeps.trial.data import read_idx
from tests.conftest import run_sweep_cli, sweep_runs, write_sweep

pytestmark = pytest.mark.slow

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
PRETRAINING_CLASSES = range(5)  # T-shirt/top, trouser, pullover, dress, coat
NEW_CLASSES = {5: "sandal", 6: "shirt", 7: "sneaker", 8: "bag", 9: "ankle_boot"}
MEAN, STD = 0.286, 0.353  # Fashion-MNIST's pixel mean and std, the pretraining's normalization
PER_CLASS = 60  # 300 photos: 240 to train on, 60 to validate


def fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    if not FASHION_MNIST.is_dir():
        pytest.skip(
            "Debian's dataset-fashion-mnist package is not installed "
            "(/usr/share/datasets/fashion-mnist)"
        )
    return read_idx(FASHION_MNIST / "train-images-idx3-ubyte.gz"), read_idx(
        FASHION_MNIST / "train-labels-idx1-ubyte.gz"
    )


def pretrain_backbone(
    images: np.ndarray, labels: np.ndarray, path: Path, *, examples: int = 1500, epochs: int = 1
) -> None:
    """A torchvision resnet18 trained a little on the first five classes, saved as a state_dict
    (1000 outputs, as torchvision builds it: the sweep replaces the head). Its top features are
    specific to those classes (a linear probe on them does worse than on layer2's), so the sweep
    fine-tunes the top one or two blocks."""
    import torch
    import torchvision

    keep = np.flatnonzero(np.isin(labels, PRETRAINING_CLASSES))[:examples]
    x = (
        torch.from_numpy(images[keep])
        .float()
        .div(255)
        .sub(MEAN)
        .div(STD)[:, None]
        .expand(-1, 3, -1, -1)
        .contiguous()
    )
    y = torch.from_numpy(labels[keep].astype(np.int64))
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        for batch in torch.randperm(len(y)).split(50):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.save(model.state_dict(), path)


def write_photo_folder(images: np.ndarray, labels: np.ndarray, root: Path) -> None:
    """The other five classes as a person's folder of PNGs, one sub-folder per class."""
    for label, name in NEW_CLASSES.items():
        (root / name).mkdir(parents=True)
        for index, image in enumerate(images[np.flatnonzero(labels == label)[:PER_CLASS]]):
            Image.fromarray(image, mode="L").save(root / name / f"img_{index:04d}.png")


@pytest.fixture(scope="module")
def transfer_sweep(tmp_path_factory) -> Path:
    images, labels = fashion_mnist()
    folder = tmp_path_factory.mktemp("transfer")
    pretrain_backbone(images, labels, folder / "resnet18-fashion-0-4.pt")
    write_photo_folder(images, labels, folder / "photos")
    return write_sweep(
        folder,
        {
            "name": "fashion-transfer",
            "data": {
                "dataset": "image_folder",
                "root": str(folder / "photos"),
                "image_size": 28,
                "val_fraction": 0.2,
                "normalization": {"mean": [MEAN], "std": [STD]},
            },
            "model": {
                "arch": "pretrained",
                "backbone": "resnet18",
                "weights": str(folder / "resnet18-fashion-0-4.pt"),
                "min_input_size": 28,
            },
            "params": {
                "lr": {"log_uniform": [5.0e-3, 2.0e-2]},
                "trainable_layers": {"choice": [1, 2]},
                "momentum": 0.9,
                "batch_size": 32,
            },
            "train": {"epochs": 4},
            # seed 0 draws one trial of each trainable_layers: both prefixes get cached
            "search": {"num_samples": 2, "max_concurrent": 2, "seed": 0},
            "early_stopping": {"scheduler": "none"},
        },
    )


def per_trial_val_loss(tracking_uri: str, experiment: str) -> dict[tuple[str, int], list[float]]:
    client, parents, children = sweep_runs(tracking_uri, experiment)
    assert len(parents) == 1 and len(children) == 2
    return {
        (child.data.params["lr"], yaml.safe_load(child.data.params["trainable_layers"])): [
            metric.value
            for metric in sorted(
                client.get_metric_history(child.info.run_id, "val_loss"),
                key=lambda metric: metric.step,
            )
        ]
        for child in children
    }


def test_a_backbone_pretrained_on_half_the_classes_fine_tunes_on_photos_of_the_other_half(
    transfer_sweep, tmp_path, tracking_uri, ray_address
):
    # `sweep check` says which prefixes it caches: tests/commands/test_check.py.
    runs = {}
    for experiment, cache in (("fashion-cached", "true"), ("fashion-whole", "false")):
        result = run_sweep_cli(
            "run",
            str(transfer_sweep),
            "--address",
            ray_address,
            "--tracking-uri",
            tracking_uri,
            "--experiment",
            experiment,
            "--set",
            f"model.cache_features={cache}",
            "--set",
            f"storage.path={tmp_path / 'results'}",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        runs[experiment] = (result.stdout, per_trial_val_loss(tracking_uri, experiment))

    cached_output, cached = runs["fashion-cached"]
    assert "frozen features: 2 set(s)" in cached_output and "computed once" in cached_output
    assert "frozen features: not cached: model.cache_features is false" in runs["fashion-whole"][0]
    best = float(cached_output.split("best val_acc: ")[1].split()[0])
    assert best >= 0.6, cached_output  # five new classes, chance is 0.2
    # Trained on cached features, every trial's validation loss is the whole model's, epoch by
    # epoch.
    whole = runs["fashion-whole"][1]
    assert cached.keys() == whole.keys()
    for trial, losses in cached.items():
        assert losses == pytest.approx(whole[trial], rel=1e-3), trial
