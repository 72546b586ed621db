"""Issue 16's GPU benchmark in one process: loop, processes per GPU, fused against unfused, `sweep
run` against a peer.

    python bench/gpu.py [--only loop|processes|fused|probe|sweep] [--cpu-dry-run] [--workdir DIR]

Run it through bench/gpu.sh (which installs what is missing from a wheel folder and keeps
it under 8 minutes). Two workloads: the digits MLP (3x128, 1438 training images) and
resnet-small on CIFAR-10-shaped images (widths 16/32/64, 3x32x32, 16384 synthetic images
of 10 classes: the machine has no network), both fp32, batch 64 and 128.

  loop       a trial's epoch (sweeps.trial.training.run_training) against a hand-written
             GPU-resident loop on the same model: their time per epoch.
  processes  1, 4 and 8 processes training on one GPU at once: aggregate images/s
             against one process.
  fused      16 digits-MLP trials and 8 resnet-small trials, one after another against
             fused into one group: training images/s.
  probe      `gpus_per_trial: auto`'s probe of one group, and the share its rule picks.
  sweep      `sweep run` (fused, gpus_per_trial: auto) against bench/gpu_peer.py (Ray Tune's
             cifar10_pytorch example's way) on 8 resnet-small trials x 4 epochs: wall time.

--cpu-dry-run runs every part on the CPU with tiny sizes to check the logic; its figures
mean nothing. Prints a table, then one line of JSON per figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gpu_workloads import (
    DRY,
    GPU,
    Bench,
    Sizes,
    ignore,
    plain_epochs,
    sweep_config,
    timed,
    train_each,
    trial_inputs,
)

from sweeps.driver.planning.gpu_share import share_from_probe
from sweeps.trial.building import build_trial_model
from sweeps.trial.fused.loop import run_group_training
from sweeps.trial.training import run_training

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier


def loop(bench: Bench) -> None:
    for kind in ("mlp", "resnet"):
        settings, data, (sampled, *_) = trial_inputs(kind, bench.sizes, trials=1)
        epochs = bench.sizes.loop_epochs
        # warm-up
        run_training(sampled, replace(settings, epochs=1), data, ignore)
        trial_s = timed(partial(run_training, sampled, settings, data, ignore), bench.sizes.device)
        plain_s = timed(partial(plain_epochs, settings, data, sampled, epochs), bench.sizes.device)
        ratio = trial_s / plain_s
        bench.figure(
            {
                "figure": "loop",
                "model": kind,
                "trial_epoch_ms": round(1000 * trial_s / epochs, 2),
                "plain_epoch_ms": round(1000 * plain_s / epochs, 2),
                "ratio": round(ratio, 3),
            }
        )
        bench.row(
            f"trial / plain loop, {kind}",
            f"{ratio:.2f}",
            f"{1000 * trial_s / epochs:.1f} against {1000 * plain_s / epochs:.1f} ms an epoch "
            "(the trial includes its evaluation)",
        )


def _train_for(kind: str, sizes: Sizes, barrier: Barrier, results: Queue[float]) -> None:
    """One process of `processes`: train until sizes.process_seconds after the common start; its
    images/s."""
    settings, data, (sampled, *_) = trial_inputs(kind, sizes, trials=1)
    device = torch.device(sizes.device)
    train_x, train_y = (
        torch.from_numpy(data.train_x).to(device),
        torch.from_numpy(data.train_y).to(device),
    )
    model = build_trial_model(
        settings, {"activation": "relu", "init": "he", "batch_norm": True, "bias_init": 0.0}, data
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = sampled["batch_size"]

    def step() -> None:
        idx = torch.randint(len(train_y), (batch,), device=device)
        loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(10):
        step()
    barrier.wait()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < sizes.process_seconds:
        for _ in range(10):
            step()
        steps += 10
        if sizes.device == "cuda":
            torch.cuda.synchronize()
    results.put(steps * batch / (time.perf_counter() - started))


def processes(bench: Bench) -> None:
    # torch is imported here, CUDA not yet: children start at once
    context = multiprocessing.get_context("fork")
    for kind in ("mlp", "resnet"):
        single = None
        for count in (1, 4, 8):
            barrier, results = context.Barrier(count), context.Queue()
            workers = [
                context.Process(target=_train_for, args=(kind, bench.sizes, barrier, results))
                for _ in range(count)
            ]
            for worker in workers:
                worker.start()
            rates = [results.get(timeout=300) for _ in workers]
            for worker in workers:
                worker.join()
            total = sum(rates)
            single = single or total
            bench.figure(
                {
                    "figure": "processes",
                    "model": kind,
                    "processes": count,
                    "images_per_s": round(total),
                    "over_one": round(total / single, 3),
                }
            )
            bench.row(
                f"{count} processes a GPU, {kind}",
                f"{total / single:.2f}x",
                f"{total:,.0f} images/s in all",
            )


def fused(bench: Bench) -> None:
    sizes = bench.sizes
    for kind, trials, epochs in (
        ("mlp", 16, sizes.fused_mlp_epochs),
        ("resnet", 8, sizes.fused_resnet_epochs),
    ):
        settings, data, sampled = trial_inputs(kind, sizes, trials=trials, train={"epochs": epochs})
        group = list(enumerate(sampled))
        run_group_training(group[:2], replace(settings, epochs=1), data, ignore)  # warm-up
        run_training(sampled[0], replace(settings, epochs=1), data, ignore)
        unfused_s = timed(partial(train_each, sampled, settings, data), sizes.device)
        fused_s = timed(partial(run_group_training, group, settings, data, ignore), sizes.device)
        images = trials * epochs * len(data.train_y)
        bench.figure(
            {
                "figure": "fused",
                "model": kind,
                "trials": trials,
                "epochs": epochs,
                "unfused_images_per_s": round(images / unfused_s),
                "fused_images_per_s": round(images / fused_s),
                "speedup": round(unfused_s / fused_s, 3),
            }
        )
        target = " (target: at least 5x)" if kind == "mlp" else " (target: at least 2x)"
        bench.row(
            f"fused / unfused training, {trials} {kind} trials",
            f"{unfused_s / fused_s:.2f}x",
            f"{images / fused_s:,.0f} against {images / unfused_s:,.0f} images/s{target}",
        )


def probe(bench: Bench) -> None:
    if bench.sizes.device != "cuda":
        bench.row("gpus_per_trial: auto", "0", "no GPU: nothing probed (the CPU path)")
        return
    from sweeps.trial.fused.gpu_probe import probe_gpu

    for kind, trials in (("mlp", 8), ("resnet", 4)):
        settings, data, sampled = trial_inputs(kind, bench.sizes, trials=trials)
        measured = probe_gpu(list(enumerate(sampled)), settings, data)
        share = share_from_probe(**measured)
        bench.figure({"figure": "probe", "model": kind} | measured | {"share": share})
        bench.row(
            f"gpus_per_trial: auto, {kind} groups of {trials}",
            f"{share:g}",
            f"step {measured['step_ms']:.1f} ms, peak {measured['peak_bytes'] / 2**20:.0f} MiB",
        )


def write_sweep_file(bench: Bench, folder: Path) -> Path:
    """The 8 resnet-small trials both sides run, as a sweep file in `folder`."""
    config = sweep_config(
        "resnet",
        bench.sizes,
        trials=8,
        train={"epochs": bench.sizes.sweep_epochs, "checkpoint_min_interval_s": 10},
        resources={"gpus_per_trial": "auto" if bench.sizes.device == "cuda" else 0},
        early_stopping={"scheduler": "none"},
    )
    config["train"].pop("device")  # auto: CUDA where Ray gives the group a GPU
    # auto fuses no conv net on the CPU
    config["train"]["fuse"] = "auto" if bench.sizes.device == "cuda" else 4
    path = folder / "resnet.yaml"
    path.write_text(json.dumps(config))
    return path


def sweep_and_peer_commands(bench: Bench, folder: Path, path: Path) -> list[tuple[str, list[str]]]:
    """`sweep run` and bench/gpu_peer.py on the sweep file at `path`, each with its own stores."""
    return [
        (
            "sweep run",
            [
                sys.executable,
                "-m",
                "cli",
                "run",
                str(path),
                "--tracking-uri",
                f"sqlite:///{folder / 'sweep.db'}",
                "--set",
                f"storage.path={folder / 'sweep-results'}",
            ],
        ),
        (
            "peer",
            [
                sys.executable,
                str(REPO / "bench" / "gpu_peer.py"),
                str(path),
                "--tracking-uri",
                f"sqlite:///{folder / 'peer.db'}",
                "--storage",
                str(folder / "peer-results"),
                "--gpus-per-trial",
                "0.25" if bench.sizes.device == "cuda" else "0",
            ],
        ),
    ]


def wall_times(commands: list[tuple[str, list[str]]], folder: Path) -> dict[str, float]:
    """Each command's wall time in seconds, run one after the other in `folder`."""
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    }  # this checkout's modules
    walls: dict[str, float] = {}
    for name, command in commands:
        started = time.perf_counter()
        finished = subprocess.run(
            command, cwd=folder, capture_output=True, text=True, env=env, timeout=300
        )
        walls[name] = time.perf_counter() - started
        if finished.returncode != 0:
            raise SystemExit(
                f"{name} failed "
                f"({finished.returncode}):\n{finished.stdout[-2000:]}\n{finished.stderr[-2000:]}"
            )
    return walls


def sweep(bench: Bench) -> None:
    folder = bench.workdir / "sweep"
    folder.mkdir(parents=True, exist_ok=True)
    path = write_sweep_file(bench, folder)
    walls = wall_times(sweep_and_peer_commands(bench, folder, path), folder)
    ratio = walls["peer"] / walls["sweep run"]
    bench.figure(
        {
            "figure": "sweep",
            "sweep_s": round(walls["sweep run"], 2),
            "peer_s": round(walls["peer"], 2),
            "peer_over_sweep": round(ratio, 3),
        }
    )
    bench.row(
        f"peer / sweep run, 8 resnet-small x {bench.sizes.sweep_epochs} epochs",
        f"{ratio:.2f}x",
        f"{walls['sweep run']:.1f} s against {walls['peer']:.1f} s (target: at least 3x)",
    )


PARTS = {"loop": loop, "processes": processes, "fused": fused, "probe": probe, "sweep": sweep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(PARTS))
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="tiny sizes on the CPU, to check the logic; the figures mean nothing",
    )
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if not args.cpu_dry_run and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: no GPU here; --cpu-dry-run checks the logic on the CPU")
    bench = Bench(
        DRY if args.cpu_dry_run else GPU,
        args.workdir or Path(tempfile.mkdtemp(prefix="sweep-gpu-bench-")),
    )
    machine = {
        "figure": "machine",
        "platform": platform.platform(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0)
        if torch.cuda.is_available() and not args.cpu_dry_run
        else "none (dry run)",
    }
    started = time.perf_counter()
    for part in args.only or PARTS:
        PARTS[part](bench)
    print(f"{machine['gpu']}, torch {machine['torch']}, {time.perf_counter() - started:.0f} s\n")
    width = max(len(label) for label, _, _ in bench.rows)
    for label, value, detail in bench.rows:
        print(f"{label:<{width}}  {value:>7}  {detail}")
    print()
    for figure in [machine, *bench.figures]:
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
