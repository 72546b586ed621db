"""Issue 16's GPU benchmark in one process: loop, processes per GPU, fused against unfused, `sweep run` against a peer.

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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sweeps.driver.sweep_file.validation import validate_sweep  # noqa: E402
from sweeps.driver.sweep_file.distributions import preview_trial_configs  # noqa: E402
from sweeps.driver.planning.gpu_share import share_from_probe  # noqa: E402
from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data  # noqa: E402
from sweeps.trial.fused.loop import run_group_training  # noqa: E402
from sweeps.trial.building import build_trial_model  # noqa: E402
from sweeps.trial.training import run_training


@dataclass(frozen=True)
class Sizes:
    resnet_images: int
    loop_epochs: int
    fused_mlp_epochs: int
    fused_resnet_epochs: int
    process_seconds: float
    sweep_epochs: int
    device: str


GPU = Sizes(resnet_images=16384, loop_epochs=5, fused_mlp_epochs=5, fused_resnet_epochs=1, process_seconds=6.0, sweep_epochs=4, device="cuda")
DRY = Sizes(resnet_images=256, loop_epochs=1, fused_mlp_epochs=1, fused_resnet_epochs=1, process_seconds=0.5, sweep_epochs=1, device="cpu")


def sweep_config(kind: str, sizes: Sizes, *, trials: int, **sections: Any) -> dict[str, Any]:
    """A sweep file (as a dict) of `trials` MLP or resnet-small trials on this machine's device."""
    data = {"dataset": "digits"} if kind == "mlp" else {
        "dataset": "synthetic", "preprocess": "standardize", "synthetic": {"num_examples": sizes.resnet_images, "num_classes": 10, "shape": [3, 32, 32]},
    }
    model = {"arch": "mlp", "hidden": [128, 128, 128]} if kind == "mlp" else {"arch": "resnet", "widths": [16, 32, 64]}
    params = {"lr": {"log_uniform": [1.0e-3, 1.0e-1]}, "activation": "relu", "init": "he", "batch_norm": True, "momentum": 0.9,
              "batch_size": 64 if kind == "mlp" else 128}
    train = {"epochs": sizes.loop_epochs, "device": sizes.device, "checkpoint_min_interval_s": 3600} | sections.pop("train", {})
    return {"name": f"gpu-{kind}", "data": data, "model": model, "params": params, "train": train,
            "search": {"num_samples": trials, "max_concurrent": 2}, "diagnostics": {"enabled": False}} | sections


def trial_inputs(kind: str, sizes: Sizes, *, trials: int, **sections: Any):
    config = validate_sweep(sweep_config(kind, sizes, trials=trials, **sections), source=f"gpu-{kind}")
    sampled = preview_trial_configs(config.params, seed=config.search.seed, num_samples=trials)
    return build_trial_settings(config), load_sweep_data(config), sampled


def timed(run: Callable[[], Any], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def plain_epochs(settings, data, sampled, epochs: int) -> None:
    """The hand-written loop: the trial's model and optimizer, data on the device, indexed batches, nothing else."""
    device = torch.device(settings.device)
    train_x, train_y = torch.from_numpy(data.train_x).to(device), torch.from_numpy(data.train_y).to(device)
    torch.manual_seed(0)
    model = build_trial_model(settings, {"activation": "relu", "init": "he", "batch_norm": True, "bias_init": 0.0}, data).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=sampled["lr"], momentum=0.9)
    batch = sampled["batch_size"]
    for _ in range(epochs):
        order = torch.randperm(len(train_y), device=device)
        for start in range(0, len(train_y) - 1, batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def loop(bench: "Bench") -> None:
    for kind in ("mlp", "resnet"):
        settings, data, (sampled, *_) = trial_inputs(kind, bench.sizes, trials=1)
        epochs = bench.sizes.loop_epochs
        run_training(sampled, replace(settings, epochs=1), data, lambda metrics, checkpoint: None)  # warm-up
        trial_s = timed(lambda: run_training(sampled, settings, data, lambda metrics, checkpoint: None), bench.sizes.device)
        plain_s = timed(lambda: plain_epochs(settings, data, sampled, epochs), bench.sizes.device)
        ratio = trial_s / plain_s
        bench.figure({"figure": "loop", "model": kind, "trial_epoch_ms": round(1000 * trial_s / epochs, 2), "plain_epoch_ms": round(1000 * plain_s / epochs, 2), "ratio": round(ratio, 3)})
        bench.row(f"trial / plain loop, {kind}", f"{ratio:.2f}", f"{1000 * trial_s / epochs:.1f} against {1000 * plain_s / epochs:.1f} ms an epoch (the trial includes its evaluation)")


def _train_for(kind: str, sizes: Sizes, barrier: Any, results: Any) -> None:
    """One process of `processes`: train until sizes.process_seconds after the common start; its images/s."""
    settings, data, (sampled, *_) = trial_inputs(kind, sizes, trials=1)
    device = torch.device(sizes.device)
    train_x, train_y = torch.from_numpy(data.train_x).to(device), torch.from_numpy(data.train_y).to(device)
    model = build_trial_model(settings, {"activation": "relu", "init": "he", "batch_norm": True, "bias_init": 0.0}, data).to(device)
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


def processes(bench: "Bench") -> None:
    context = multiprocessing.get_context("fork")  # torch is imported here, CUDA not yet: children start at once
    for kind in ("mlp", "resnet"):
        single = None
        for count in (1, 4, 8):
            barrier, results = context.Barrier(count), context.Queue()
            workers = [context.Process(target=_train_for, args=(kind, bench.sizes, barrier, results)) for _ in range(count)]
            for worker in workers:
                worker.start()
            rates = [results.get(timeout=300) for _ in workers]
            for worker in workers:
                worker.join()
            total = sum(rates)
            single = single or total
            bench.figure({"figure": "processes", "model": kind, "processes": count, "images_per_s": round(total), "over_one": round(total / single, 3)})
            bench.row(f"{count} processes a GPU, {kind}", f"{total / single:.2f}x", f"{total:,.0f} images/s in all")


def fused(bench: "Bench") -> None:
    sizes = bench.sizes
    for kind, trials, epochs in (("mlp", 16, sizes.fused_mlp_epochs), ("resnet", 8, sizes.fused_resnet_epochs)):
        settings, data, sampled = trial_inputs(kind, sizes, trials=trials, train={"epochs": epochs})
        group = list(enumerate(sampled))
        run_group_training(group[:2], replace(settings, epochs=1), data, lambda metrics, checkpoint: None)  # warm-up
        run_training(sampled[0], replace(settings, epochs=1), data, lambda metrics, checkpoint: None)
        unfused_s = timed(lambda: [run_training(trial, settings, data, lambda metrics, checkpoint: None) for trial in sampled], sizes.device)
        fused_s = timed(lambda: run_group_training(group, settings, data, lambda metrics, checkpoint: None), sizes.device)
        images = trials * epochs * len(data.train_y)
        bench.figure({"figure": "fused", "model": kind, "trials": trials, "epochs": epochs, "unfused_images_per_s": round(images / unfused_s),
                      "fused_images_per_s": round(images / fused_s), "speedup": round(unfused_s / fused_s, 3)})
        target = " (target: at least 5x)" if kind == "mlp" else " (target: at least 2x)"
        bench.row(f"fused / unfused training, {trials} {kind} trials", f"{unfused_s / fused_s:.2f}x", f"{images / fused_s:,.0f} against {images / unfused_s:,.0f} images/s{target}")


def probe(bench: "Bench") -> None:
    if bench.sizes.device != "cuda":
        bench.row("gpus_per_trial: auto", "0", "no GPU: nothing probed (the CPU path)")
        return
    from sweeps.trial.fused.gpu_probe import probe_gpu

    for kind, trials in (("mlp", 8), ("resnet", 4)):
        settings, data, sampled = trial_inputs(kind, bench.sizes, trials=trials)
        measured = probe_gpu(list(enumerate(sampled)), settings, data)
        share = share_from_probe(**measured)
        bench.figure({"figure": "probe", "model": kind} | measured | {"share": share})
        bench.row(f"gpus_per_trial: auto, {kind} groups of {trials}", f"{share:g}", f"step {measured['step_ms']:.1f} ms, peak {measured['peak_bytes'] / 2**20:.0f} MiB")


def sweep(bench: "Bench") -> None:
    folder = bench.workdir / "sweep"
    folder.mkdir(parents=True, exist_ok=True)
    config = sweep_config("resnet", bench.sizes, trials=8, train={"epochs": bench.sizes.sweep_epochs, "checkpoint_min_interval_s": 10},
                          resources={"gpus_per_trial": "auto" if bench.sizes.device == "cuda" else 0}, early_stopping={"scheduler": "none"})
    config["train"].pop("device")  # auto: CUDA where Ray gives the group a GPU
    config["train"]["fuse"] = "auto" if bench.sizes.device == "cuda" else 4  # auto fuses no conv net on the CPU
    path = folder / "resnet.yaml"
    path.write_text(json.dumps(config))
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # this checkout's modules
    common = {"cwd": folder, "capture_output": True, "text": True, "env": env}
    walls = {}
    for name, command in (
        ("sweep run", [sys.executable, "-m", "cli", "run", str(path), "--tracking-uri", f"sqlite:///{folder / 'sweep.db'}", "--set", f"storage.path={folder / 'sweep-results'}"]),
        ("peer", [sys.executable, str(REPO / "bench" / "gpu_peer.py"), str(path), "--tracking-uri", f"sqlite:///{folder / 'peer.db'}", "--storage", str(folder / "peer-results"),
                  "--gpus-per-trial", "0.25" if bench.sizes.device == "cuda" else "0"]),
    ):
        started = time.perf_counter()
        finished = subprocess.run(command, **common, timeout=300)
        walls[name] = time.perf_counter() - started
        if finished.returncode != 0:
            raise SystemExit(f"{name} failed ({finished.returncode}):\n{finished.stdout[-2000:]}\n{finished.stderr[-2000:]}")
    ratio = walls["peer"] / walls["sweep run"]
    bench.figure({"figure": "sweep", "sweep_s": round(walls["sweep run"], 2), "peer_s": round(walls["peer"], 2), "peer_over_sweep": round(ratio, 3)})
    bench.row(f"peer / sweep run, 8 resnet-small x {bench.sizes.sweep_epochs} epochs", f"{ratio:.2f}x", f"{walls['sweep run']:.1f} s against {walls['peer']:.1f} s (target: at least 3x)")


PARTS = {"loop": loop, "processes": processes, "fused": fused, "probe": probe, "sweep": sweep}


class Bench:
    def __init__(self, sizes: Sizes, workdir: Path) -> None:
        self.sizes, self.workdir = sizes, workdir
        self.rows: list[tuple[str, str, str]] = []
        self.figures: list[dict[str, Any]] = []

    def row(self, label: str, value: str, detail: str) -> None:
        self.rows.append((label, value, detail))
        print(f"{label}: {value}  {detail}", file=sys.stderr, flush=True)

    def figure(self, figure: dict[str, Any]) -> None:
        self.figures.append(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(PARTS))
    parser.add_argument("--cpu-dry-run", action="store_true", help="tiny sizes on the CPU, to check the logic; the figures mean nothing")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if not args.cpu_dry_run and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: no GPU here; --cpu-dry-run checks the logic on the CPU")
    bench = Bench(DRY if args.cpu_dry_run else GPU, args.workdir or Path(tempfile.mkdtemp(prefix="sweep-gpu-bench-")))
    machine = {"figure": "machine", "platform": platform.platform(), "torch": torch.__version__,
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu_dry_run else "none (dry run)"}
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
