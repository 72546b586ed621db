"""Issue 17's caching benchmark: a 16-trial linear-probe sweep of resnet18 with frozen-feature
caching and without.

    python bench/transfer.py [--quick] [--workdir DIR]

Writes a folder of 2,000 generated photos at 64x64 (10 classes of coloured layouts, each
image shifted, lit and noised at random) and a resnet18 state_dict (torchvision's
initialization, seeded: what a trial costs does not depend on what the weights learned,
and nothing is downloaded), then runs `sweep run` on the same sweep file twice, each a
fresh process with its own Ray, sqlite MLflow store and storage folder:
`model.cache_features: true` and `false`. 16 trials of `trainable_layers: 0` (a linear
probe), 10 epochs each, no early stopping, 2 at a time on 1 CPU each. Prints the wall
times, their ratio (target: at least 10x) and each sweep's best val_acc (target: the
same within 0.5 points), then one line of JSON per figure. --quick (4 trials, 2 epochs,
400 photos) is a smoke test; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def write_photos(root: Path, *, count: int, size: int = 64, classes: int = 10) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    layouts = rng.uniform(30, 225, size=(classes, 4, 4, 3))  # each class: a 4x4 grid of colours
    for index in range(count):
        label = index % classes
        image = np.kron(layouts[label], np.ones((size // 4, size // 4, 1)))
        image = np.roll(image, tuple(rng.integers(-size // 8, size // 8 + 1, size=2)), axis=(0, 1))
        image = image * rng.uniform(0.7, 1.3) + rng.normal(0, 40, size=image.shape)
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(
            folder / f"img_{index:05d}.png"
        )


def write_backbone(path: Path) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)


def sweep_file(workdir: Path, *, trials: int, epochs: int) -> Path:
    sweep = {
        "name": "linear-probe",
        "data": {
            "dataset": "image_folder",
            "root": str(workdir / "photos"),
            "image_size": 64,
            "normalization": {"mean": [0.5], "std": [0.25]},
        },
        "model": {
            "arch": "pretrained",
            "backbone": "resnet18",
            "weights": str(workdir / "resnet18.pt"),
        },
        "params": {
            "lr": {"log_uniform": [1.0e-3, 3.0e-2]},
            "weight_decay": {"log_uniform": [1.0e-6, 1.0e-3]},
            "trainable_layers": 0,
            "momentum": 0.9,
            "batch_size": 64,
        },
        "train": {"epochs": epochs},
        "search": {"num_samples": trials, "max_concurrent": 2, "seed": 0},
        "early_stopping": {"scheduler": "none"},
    }
    path = workdir / "linear-probe.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def run_sweep(path: Path, folder: Path, *, cache: bool) -> dict:
    folder.mkdir(parents=True)
    env = os.environ | {"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    command = [
        sys.executable,
        "-m",
        "cli",
        "run",
        str(path),
        "--set",
        f"model.cache_features={str(cache).lower()}",
        "--tracking-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--set",
        f"storage.path={folder / 'results'}",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    (folder / "stdout.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(
            f"sweep run failed (exit {result.returncode}); see {folder / 'stdout.log'}"
        )
    best = re.search(r"^best val_acc: ([0-9.]+)$", result.stdout, re.MULTILINE)
    assert best is not None, f"the sweep printed no best val_acc:\n{result.stdout}"
    computed = re.search(r"computed once in ([0-9.]+) s", result.stdout)
    return {
        "figure": "linear_probe_sweep",
        "cache_features": cache,
        "wall_s": round(wall_s, 1),
        "best_val_acc": float(best.group(1)),
        "features_s": float(computed.group(1)) if computed else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    trials, epochs, photos = (4, 2, 400) if args.quick else (16, 10, 2000)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sweep-transfer-"))
    if not (workdir / "photos").exists():
        write_photos(workdir / "photos", count=photos)
        write_backbone(workdir / "resnet18.pt")
    path = sweep_file(workdir, trials=trials, epochs=epochs)
    cached = run_sweep(path, workdir / f"cached-{time.strftime('%H%M%S')}", cache=True)
    whole = run_sweep(path, workdir / f"whole-{time.strftime('%H%M%S')}", cache=False)
    ratio = whole["wall_s"] / cached["wall_s"]
    points = abs(cached["best_val_acc"] - whole["best_val_acc"]) * 100
    print(
        f"{trials} trials x {epochs} epochs, {photos} photos at 64x64, resnet18 linear probe "
        f"(workdir {workdir})"
    )
    print(
        f"  cached features: {cached['wall_s']:8.1f} s  best val_acc "
        f"{cached['best_val_acc']:.4f}  (features computed in {cached['features_s']} s)"
    )
    print(f"  whole model:     {whole['wall_s']:8.1f} s  best val_acc {whole['best_val_acc']:.4f}")
    print(
        f"  speed-up {ratio:.1f}x (target: at least 10x); best val_acc differs by {points:.2f} "
        "points (target: within 0.5)"
    )
    for figure in (
        cached,
        whole,
        {"figure": "caching_speedup", "ratio": round(ratio, 2), "val_acc_points": round(points, 3)},
    ):
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
