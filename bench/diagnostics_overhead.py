"""How much the diagnostics cost: the plain training loop with them on and off.

    python bench/diagnostics_overhead.py [--repeats 15] [--epochs 20]

Trains the default sweep's model (3x128 MLP on digits) with the same params and
seed, alternating on/off to spread machine noise, and prints the median epoch
time of each and the overhead, plus one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from sweeps.driver.planning.plan import build_trial_settings
from sweeps.driver.sweep_file.reading import load_sweep
from sweeps.trial.data import DataSpec, SplitData, load_split
from sweeps.trial.training import run_training

REPO = Path(__file__).resolve().parent.parent
PARAMS = {"lr": 0.02, "activation": "relu", "init": "he", "batch_norm": True, "batch_size": 64}


def time_training(data: SplitData, *, enabled: bool, epochs: int, every_n_steps: int) -> float:
    # The default sweep's schedule: activations at its cadence, histograms at ASHA's rungs and the
    # last epoch.
    overrides = [
        ("train.epochs", epochs),
        ("train.checkpoint_every", epochs),
        ("diagnostics.enabled", enabled),
        ("diagnostics.every_n_steps", every_n_steps),
    ]
    settings = build_trial_settings(load_sweep(REPO / "search.yaml", overrides))
    started = time.perf_counter()
    run_training(PARAMS, settings, data, lambda metrics, checkpoint: None)
    return (time.perf_counter() - started) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every-n-steps", type=int, default=20)
    args = parser.parse_args()
    data = load_split(DataSpec("digits"), val_fraction=0.2, preprocess="per_channel_mean", seed=0)
    # warm up imports and allocator
    time_training(data, enabled=True, epochs=2, every_n_steps=args.every_n_steps)
    on, off = [], []
    for _ in range(args.repeats):
        off.append(
            time_training(data, enabled=False, epochs=args.epochs, every_n_steps=args.every_n_steps)
        )
        on.append(
            time_training(data, enabled=True, epochs=args.epochs, every_n_steps=args.every_n_steps)
        )
    median_on, median_off = statistics.median(on), statistics.median(off)
    overhead = median_on / median_off - 1
    print(f"epoch time, diagnostics off: {median_off * 1000:.1f} ms (median of {args.repeats})")
    print(
        f"epoch time, diagnostics on (every {args.every_n_steps} steps): {median_on * 1000:.1f} ms"
    )
    print(f"overhead: {overhead:+.1%}")
    print(
        json.dumps(
            {
                "figure": "diagnostics_overhead",
                "epoch_ms_off": round(median_off * 1000, 2),
                "epoch_ms_on": round(median_on * 1000, 2),
                "overhead": round(overhead, 4),
                "every_n_steps": args.every_n_steps,
                "torch_threads": torch.get_num_threads(),
                "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
            }
        )
    )


if __name__ == "__main__":
    main()
