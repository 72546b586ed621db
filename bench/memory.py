"""Issue 17's memory figures: what a sweep on an image folder holds, with the code before 8-bit
storage and after.

    python bench/memory.py [--images 400] [--size 224] [--before f41e2fa] [--workdir DIR]

Writes two folders of random photos (10 classes) at `--size` x `--size`, of `--images`
and half as many, then for each version of the code (`--before`, a commit extracted with
`git archive`, and this checkout) and each folder measures, each in a fresh process:

  driver        the rise of the `sweep run` process's peak RSS while it loads and splits the
                data (plan.load_sweep_data), after torch and torchvision are imported
  object store  the bytes Ray's object store holds for the split: the data pickled with
                protocol 5 and its arrays out of band, as ray.put stores them
  trial         the data a trial holds on its device (the split's tensors after `to()`;
                on a GPU that is device memory), and the rise of a real Ray trial's peak
                RSS over one epoch of a small MLP on it (on the CPU a trial maps the object
                store's pages, which count once touched)

and prints, per figure, the cost of one more image (the slope between the two folders:
what grows with the data set, apart from fixed costs such as a chunk of floats while
fitting statistics) and the 20,000-image folder of issue 17 extrapolated from it, then
one line of JSON per measurement. The model is a small MLP on purpose: the figures are
the data's, and a pretrained backbone would add the same to both versions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeps.trial.data import SplitData
    from sweeps.trial_settings import TrialSettings

REPO = Path(__file__).resolve().parent.parent
MB = 2**20
ISSUE_IMAGES = 20_000


def write_folder(root: Path, *, images: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(images):
        folder = root / f"class_{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            folder / f"{index:05d}.png"
        )


def extract(commit: str, into: Path) -> Path:
    """The project's tree at `commit`, without touching the checkout."""
    archive = subprocess.run(
        ["git", "archive", commit], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(folder: str, size: int) -> dict:
    """Run in a fresh process whose PYTHONPATH is the code measured."""
    import pickle

    import numpy as np
    import torch
    import torchvision.datasets  # noqa: F401  (imported before the baseline: the code's import cost is not the data's)
    import torchvision.transforms.v2  # noqa: F401

    from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data
    from sweeps.driver.sweep_file.validation import validate_sweep

    raw = {
        "name": "memory",
        "data": {
            "dataset": "image_folder",
            "root": folder,
            "image_size": size,
            "preprocess": "standardize",
        },
        "model": {"arch": "mlp", "hidden": [16]},
        "params": {"lr": 0.01, "batch_size": 64},
        "train": {"epochs": 1},
        "diagnostics": {"enabled": False},
    }
    config = validate_sweep(raw, source="memory")
    before = peak_rss_mb()
    data = load_sweep_data(config)
    driver_mb = peak_rss_mb() - before
    buffers: list = []
    inline = pickle.dumps(data, protocol=5, buffer_callback=buffers.append)
    store_bytes = len(inline) + sum(buffer.raw().nbytes for buffer in buffers)
    on_device = data.to(torch.device("cpu"))
    device_bytes = sum(
        t.nbytes for t in (on_device.train_x, on_device.val_x, on_device.train_y, on_device.val_y)
    )
    return {
        "images": len(data.train_y) + len(data.val_y),
        "pixel_dtype": str(np.asarray(data.train_x).dtype),
        "driver_mb": round(driver_mb, 1),
        "object_store_mb": round(store_bytes / MB, 1),
        "trial_device_mb": round(device_bytes / MB, 1),
        "trial_rss_mb": round(trial_rss_mb(data, build_trial_settings(config)), 1),
    }


def trial_rss_mb(data: SplitData, settings: TrialSettings) -> float:
    """A real Ray trial's peak RSS rise over one epoch on the data it gets from the object store."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote
        def one_epoch(data: SplitData, settings: TrialSettings) -> float:
            import dataclasses

            from sweeps.trial.training import run_training

            def train(on: SplitData) -> None:
                run_training(
                    {"lr": 0.01, "batch_size": 64}, settings, on, lambda metrics, checkpoint: None
                )

            # A warm-up on the first few images: torch's own first-use costs are not the data's.
            train(
                dataclasses.replace(
                    data,
                    train_x=data.train_x[:128],
                    train_y=data.train_y[:128],
                    val_x=data.val_x[:64],
                    val_y=data.val_y[:64],
                )
            )
            before = peak_rss_mb()
            train(data)
            return peak_rss_mb() - before

        return ray.get(one_epoch.remote(ray.put(data), settings))
    finally:
        ray.shutdown()


def run_version(code: Path, folder: Path, size: int) -> dict:
    env = os.environ | {"PYTHONPATH": str(code), "RAY_USAGE_STATS_ENABLED": "0"}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--measure",
        str(folder),
        "--size",
        str(size),
    ]
    result = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"measuring {code} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


COLUMNS = ("driver_mb", "object_store_mb", "trial_device_mb", "trial_rss_mb")


def report(measured: dict[str, list[dict]]) -> None:
    """Per image (KB, the slope between the folders) and at 20,000 images (GB), per version."""
    slopes = {}
    print(f"{'':<34}" + "".join(f"{name:>17}" for name in COLUMNS))
    for version, (small, large) in measured.items():
        added = large["images"] - small["images"]
        slopes[version] = {
            name: (large[name] - small[name]) / added for name in COLUMNS
        }  # MB per image
        fixed = {name: large[name] - slopes[version][name] * large["images"] for name in COLUMNS}
        print(
            f"{version + ', KB per image':<34}"
            + "".join(f"{slopes[version][name] * 1024:>17.1f}" for name in COLUMNS)
        )
        at_issue = {
            name: (fixed[name] + slopes[version][name] * ISSUE_IMAGES) / 1024 for name in COLUMNS
        }
        print(
            f"{version + ', GB at 20,000':<34}"
            + "".join(f"{at_issue[name]:>17.2f}" for name in COLUMNS)
        )
    if len(slopes) == 2:
        (_, before), (_, after) = slopes.items()
        print(
            f"{'after/before, per image':<34}"
            + "".join(f"{after[name] / before[name]:>17.3f}" for name in COLUMNS)
        )
    for version, runs in measured.items():
        for figure in runs:
            print(json.dumps({"figure": "memory", "version": version, **figure}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument(
        "--before",
        default="f41e2fa",
        help="the commit before 8-bit storage (default: issue 17's base)",
    )
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.size)))
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sweep-memory-"))
    folders = [workdir / f"photos-{count}x{args.size}" for count in (args.images // 2, args.images)]
    for folder, count in zip(folders, (args.images // 2, args.images), strict=True):
        if not folder.exists():
            write_folder(folder, images=count, size=args.size)
    before = workdir / f"code-{args.before}"
    if not before.exists():
        extract(args.before, before)
    versions = {f"before {args.before}": before, "after": REPO}
    report(
        {
            version: [run_version(code, folder, args.size) for folder in folders]
            for version, code in versions.items()
        }
    )


if __name__ == "__main__":
    main()
