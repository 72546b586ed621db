"""The floor of bench/run.py: a sweep's trials trained back to back in one plain PyTorch process.

    python bench/floor.py bench/digits.yaml [--seed 0] [--trials 16] [--epochs 20]
    [--epochs-per-trial 20,2,6,...]

No Ray, no MLflow, no checkpoint files, no diagnostics: the project's own training loop
(sweeps.trial.training.run_training) on the trials `sweep run` samples with the same file and
seed (sweeps.driver.sweep_file.distributions.preview_trial_configs), with one torch thread as a
trial with
cpus_per_trial: 1 has. `--epochs-per-trial` trains each trial for the epochs it got in a
sweep (ASHA stops trials early); without it every trial trains train.epochs. The floor
is the training time summed over trials and divided by search.max_concurrent: what
running that many trials at once would take with no cost to orchestrate or log them.

Prints one line of JSON; trial_s lists each trial's training time in sampling order.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data
from sweeps.driver.sweep_file.distributions import preview_trial_configs
from sweeps.driver.sweep_file.reading import load_sweep
from sweeps.trial.training import run_training
from sweeps.trial_settings import TrialSettings


def train_trial(
    sampled: dict[str, Any], settings: TrialSettings, data: Any, *, epochs: int
) -> tuple[float, int, float]:
    """Seconds to train one trial for `epochs`, the epochs it trained (fewer if it diverged), its
    best val_acc."""
    settings = dataclasses.replace(
        settings,
        epochs=epochs,
        checkpoint_every=max(1, epochs),
        diagnostics=dataclasses.replace(settings.diagnostics, enabled=False),
    )
    val_accs: list[float] = []
    started = time.perf_counter()
    run_training(
        sampled, settings, data, lambda metrics, checkpoint: val_accs.append(metrics["val_acc"])
    )
    return (
        time.perf_counter() - started,
        len(val_accs),
        max(val_accs, default=0.0),
    )  # 0 epochs: it failed in the sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_file")
    parser.add_argument("--seed", type=int, help="search.seed (default: the file's)")
    parser.add_argument("--trials", type=int, help="search.num_samples (default: the file's)")
    parser.add_argument("--epochs", type=int, help="train.epochs (default: the file's)")
    parser.add_argument(
        "--epochs-per-trial", help="comma-separated epochs for each trial, in sampling order"
    )
    args = parser.parse_args()

    overrides = [
        ("search.seed", args.seed),
        ("search.num_samples", args.trials),
        ("train.epochs", args.epochs),
    ]
    # No scheduler here: --epochs-per-trial says how long ASHA let each trial train.
    overrides = [("early_stopping.scheduler", "none")] + [
        (key, value) for key, value in overrides if value is not None
    ]
    config = load_sweep(args.sweep_file, overrides)
    trials = preview_trial_configs(
        config.params, seed=config.search.seed, num_samples=config.search.num_samples
    )
    if args.epochs_per_trial:
        epochs = [int(value) for value in args.epochs_per_trial.split(",")]
        if len(epochs) != len(trials):
            parser.error(
                f"--epochs-per-trial: {len(trials)} trials need {len(trials)} values, got "
                f"{len(epochs)}"
            )
    else:
        epochs = [config.train.epochs] * len(trials)
    data = load_sweep_data(config)
    settings = build_trial_settings(config)
    train_trial(trials[0], settings, data, epochs=1)  # warm up PyTorch's allocator and kernels

    timed = [
        train_trial(sampled, settings, data, epochs=count)
        for sampled, count in zip(trials, epochs, strict=True)
    ]
    train_s = sum(seconds for seconds, _, _ in timed)
    print(
        json.dumps(
            {
                "figure": "floor",
                "trials": len(trials),
                "seed": config.search.seed,
                "concurrency": config.search.max_concurrent,
                "train_s": round(train_s, 3),
                "floor_s": round(train_s / config.search.max_concurrent, 3),
                "total_epochs": sum(trained for _, trained, _ in timed),
                "best_val_acc": max(best for _, _, best in timed),
                "trial_s": [round(seconds, 4) for seconds, _, _ in timed],
                "trial_lr": [
                    sampled["lr"] for sampled in trials
                ],  # for the caller to check these are its sweep's trials
            }
        )
    )


if __name__ == "__main__":
    main()
