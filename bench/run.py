"""Issue 8's benchmark in one go: `sweep run` against an idiomatic Ray Tune peer and a plain-PyTorch
floor.

    python bench/run.py [--quick] [--only compare|fusion|asha|diagnostics|per-trial] [--workdir DIR]

Every run is a fresh process on bench/digits.yaml's workload (16 trials of a 3x128 MLP
on digits, 20 epochs, 2 trials at a time on 1 CPU each) with its own new sqlite MLflow
store and Ray storage folder in the work folder (a temporary one unless --workdir):

  compare      `sweep run` fused (train.fuse: auto, the default) and unfused (off), with
               ASHA and with `scheduler: none` (and fused with diagnostics off, whose
               MLflow content is the closest to the peer's); bench/peer.py, the same
               sweep written as Ray Tune's PyTorch examples write it, on both; the
               unfused floor (bench/floor.py: the same trials' epochs in one plain
               PyTorch process, divided by the concurrency); Ray's start-up; the ratios
               unfused/fused, peer/fused and run phase/floor.
  fusion       fused against unfused with ASHA on 3 seeds: best val_acc, epochs, wall time.
  asha         ASHA against no early stopping on 3 seeds: best val_acc, epochs trained.
  diagnostics  `sweep run` with diagnostics on and off, end to end (3 pairs, medians),
               and the training loop's own figure from bench/diagnostics_overhead.py.
  per-trial    `sweep run` on 50, 100 and 200 trials of 1 epoch, and a line fitted to
               the wall time beyond the floor: its slope is what one more trial costs.

Wall times are whole processes, timed from here. `sweep run` prints no timings, so a
sweep's run phase (after Ray is up) is its wall time less what bench/ray_startup.py
measures in a process of its own, after one warm-up run: the time from starting a
process to Ray being up (interpreter, imports, data, ray.init) and ray.shutdown().
Epochs and best val_acc are read back from each sweep's MLflow store. A run that
several parts need (the seed-0 sweeps) runs once.

--quick shrinks every part for a smoke test (4 trials x 3 epochs, 1 seed, 1 pair, 10
and 20 trials x 1 epoch); its figures mean nothing. Prints one table, then one line of
JSON per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import FULL, QUICK, Bench, BenchError, fit_line, machine


def check_peer_sampled_the_same_trials(
    bench: Bench, peer: dict[str, Any], sweeps: tuple[dict[str, Any], ...]
) -> None:
    """The ratios compare like with like only if the peer ran the sweeps' trials."""
    for sweep in sweeps:
        if [trial["lr"] for trial in peer["per_trial"]] != [
            trial["lr"] for trial in sweep["per_trial"]
        ]:
            raise BenchError(
                "the peer sampled other trials than the sweep (compare their lr in "
                f"{bench.workdir})"
            )


def ratios_figure(
    scheduler: str,
    fused: dict[str, Any],
    unfused: dict[str, Any],
    peer: dict[str, Any],
    floor: dict[str, Any],
) -> dict[str, Any]:
    """One scheduler's ratios: unfused/fused, peer/fused and /unfused, run phase/floor."""
    return {
        "figure": "ratios",
        "scheduler": scheduler,
        "unfused_over_fused": round(unfused["wall_s"] / fused["wall_s"], 3),
        "peer_over_fused": round(peer["process_wall_s"] / fused["wall_s"], 3),
        "peer_over_unfused": round(peer["process_wall_s"] / unfused["wall_s"], 3),
        "fused_run_phase_over_floor": round(fused["run_phase_s"] / floor["floor_s"], 3),
        "unfused_run_phase_over_floor": round(unfused["run_phase_s"] / floor["floor_s"], 3),
        "epochs_fused": fused["total_epochs"],
        "epochs_unfused": unfused["total_epochs"],
    }


def add_ratio_rows(
    bench: Bench,
    figure: dict[str, Any],
    fused: dict[str, Any],
    unfused: dict[str, Any],
    floor: dict[str, Any],
) -> None:
    """The table's three rows for one scheduler's ratios, with the targets they aim for."""
    scheduler = figure["scheduler"]
    bench.row(
        f"unfused/fused, {scheduler}, whole process",
        f"{figure['unfused_over_fused']:.2f}x",
        f"{unfused['wall_s']:.1f} s against {fused['wall_s']:.1f} s"
        + (" (target: at least 1.7x)" if scheduler == "asha" else ""),
    )
    bench.row(
        f"peer/fused, {scheduler}, whole process",
        f"{figure['peer_over_fused']:.1f}x",
        f"unfused: {figure['peer_over_unfused']:.1f}x"
        + (" (target: at least 8x fused)" if scheduler == "asha" else ""),
    )
    bench.row(
        f"run phase / unfused floor, {scheduler}",
        f"{figure['fused_run_phase_over_floor']:.2f}",
        f"fused {fused['run_phase_s']:.1f} s ({fused['total_epochs']} epochs), unfused "
        f"{figure['unfused_run_phase_over_floor']:.2f} "
        f"({unfused['total_epochs']} epochs), floor {floor['floor_s']:.1f} s (target: fused "
        "at most 1)",
    )


def compare_peer_with_diagnostics_off(bench: Bench) -> None:
    """The peer against the fused sweep whose MLflow content is the closest to the peer's."""
    trials, epochs = bench.workload.trials, bench.workload.epochs
    diagnostics_off = bench.sweep(
        scheduler="none", seed=0, trials=trials, epochs=epochs, diagnostics=False
    )
    peer = bench.peer(scheduler="none", seed=0)
    bench.figure(
        {
            "figure": "ratios",
            "scheduler": "none",
            "diagnostics": False,
            "peer_over_fused": round(peer["process_wall_s"] / diagnostics_off["wall_s"], 3),
        }
    )
    bench.row(
        "peer/fused, none, diagnostics off",
        f"{peer['process_wall_s'] / diagnostics_off['wall_s']:.1f}x",
        "the MLflow content closest to the peer's",
    )


def compare(bench: Bench) -> None:
    trials, epochs = bench.workload.trials, bench.workload.epochs
    for scheduler in ("none", "asha"):
        fused = bench.sweep(scheduler=scheduler, seed=0, trials=trials, epochs=epochs)
        unfused = bench.sweep(scheduler=scheduler, seed=0, trials=trials, epochs=epochs, fuse="off")
        peer = bench.peer(scheduler=scheduler, seed=0)
        check_peer_sampled_the_same_trials(bench, peer, (fused, unfused))
        # the unfused floor: each trial for the epochs the unfused sweep gave it
        floor = bench.floor(of=unfused)
        figure = ratios_figure(scheduler, fused, unfused, peer, floor)
        bench.figure(figure)
        add_ratio_rows(bench, figure, fused, unfused, floor)
    compare_peer_with_diagnostics_off(bench)


def fusion(bench: Bench) -> None:
    """Fused against unfused, both with ASHA, on 3 seeds: the best val_acc and the epochs each
    trained."""
    trials, epochs = bench.workload.trials, bench.workload.epochs
    seeds = []
    for seed in bench.workload.seeds:
        fused = bench.sweep(scheduler="asha", seed=seed, trials=trials, epochs=epochs)
        unfused = bench.sweep(scheduler="asha", seed=seed, trials=trials, epochs=epochs, fuse="off")
        seeds.append(
            {
                "seed": seed,
                "best_val_acc_fused": fused["best_val_acc"],
                "best_val_acc_unfused": unfused["best_val_acc"],
                "points": round(100 * (fused["best_val_acc"] - unfused["best_val_acc"]), 2),
                "epochs_fused": fused["total_epochs"],
                "epochs_unfused": unfused["total_epochs"],
                "unfused_over_fused": round(unfused["wall_s"] / fused["wall_s"], 3),
            }
        )
    figure = {"figure": "fused_vs_unfused", "seeds": seeds}
    bench.figure(figure)
    per_seed = ", ".join(f"seed {seed['seed']}: {seed['points']:+.1f}" for seed in seeds)
    bench.row(
        f"fused - unfused, ASHA, best val_acc, {len(seeds)} seeds",
        f"{max(abs(seed['points']) for seed in seeds):.2f} pts",
        f"{per_seed} (target: within 0.5 points)",
    )
    walls = ", ".join(f"{seed['unfused_over_fused']:.2f}x" for seed in seeds)
    bench.row(
        f"unfused/fused, ASHA, whole process, {len(seeds)} seeds",
        walls,
        ", ".join(f"{seed['epochs_fused']} vs {seed['epochs_unfused']} epochs" for seed in seeds),
    )


def asha(bench: Bench) -> None:
    trials, epochs = bench.workload.trials, bench.workload.epochs
    seeds = []
    for seed in bench.workload.seeds:
        early = bench.sweep(scheduler="asha", seed=seed, trials=trials, epochs=epochs)
        full = bench.sweep(scheduler="none", seed=seed, trials=trials, epochs=epochs)
        seeds.append(
            {
                "seed": seed,
                "best_val_acc_asha": early["best_val_acc"],
                "best_val_acc_none": full["best_val_acc"],
                "points": round(100 * (early["best_val_acc"] - full["best_val_acc"]), 2),
                "epochs_asha": early["total_epochs"],
                "epochs_none": full["total_epochs"],
            }
        )
    points = statistics.fmean(seed["points"] for seed in seeds)
    share = sum(seed["epochs_asha"] for seed in seeds) / sum(seed["epochs_none"] for seed in seeds)
    figure = {
        "figure": "asha_vs_none",
        "mean_points": round(points, 2),
        "epochs_share": round(share, 4),
        "seeds": seeds,
    }
    per_seed = ", ".join(f"seed {seed['seed']}: {seed['points']:+.1f}" for seed in seeds)
    bench.figure(figure)
    bench.row(
        f"ASHA - none, best val_acc, {len(seeds)} seeds",
        f"{points:+.2f} pts",
        f"{per_seed} (target: within 1 point)",
    )
    bench.row(f"ASHA / none, epochs, {len(seeds)} seeds", f"{share:.0%}", "target: at most 40%")


def diagnostics(bench: Bench) -> None:
    trials, epochs = bench.workload.trials, bench.workload.epochs
    on, off = [], []
    for repeat in range(
        bench.workload.diagnostics_pairs
    ):  # interleaved, so a drifting machine load hits both alike
        on.append(
            bench.sweep(scheduler="none", seed=0, trials=trials, epochs=epochs, repeat=repeat)
        )
        off.append(
            bench.sweep(
                scheduler="none",
                seed=0,
                trials=trials,
                epochs=epochs,
                diagnostics=False,
                repeat=repeat,
            )
        )
    loop = bench.diagnostics_loop()

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    figure = {
        "figure": "diagnostics_overhead",
        "run_phase": round(median(on, "run_phase_s") / median(off, "run_phase_s") - 1, 4),
        "whole_process": round(median(on, "wall_s") / median(off, "wall_s") - 1, 4),
        "sweep_pairs": len(on),
        "training_loop": loop["overhead"],
        "loop_epoch_ms_on": loop["epoch_ms_on"],
        "loop_epoch_ms_off": loop["epoch_ms_off"],
        "loop_repeats": bench.workload.loop_repeats,
    }
    bench.figure(figure)
    bench.row(
        "diagnostics on/off, sweep run phase",
        f"{figure['run_phase']:+.1%}",
        f"median {median(on, 'run_phase_s'):.1f} s vs {median(off, 'run_phase_s'):.1f} s of "
        f"{len(on)} pairs; "
        f"whole process {figure['whole_process']:+.1%} (target: under 5%)",
    )
    bench.row(
        "diagnostics on/off, training loop",
        f"{loop['overhead']:+.1%}",
        f"{loop['epoch_ms_on']} vs {loop['epoch_ms_off']} ms per epoch, median of "
        f"{bench.workload.loop_repeats}",
    )


def per_trial(bench: Bench) -> None:
    counts = bench.workload.trial_counts
    sweeps = [bench.sweep(scheduler="none", seed=0, trials=count, epochs=1) for count in counts]
    startup = bench.ray_startup()
    # The smaller sweeps' trials are the first ones of the largest: the same seed samples them
    # first.
    floor = bench.floor(of=sweeps[-1])
    floors = [sum(floor["trial_s"][:count]) / floor["concurrency"] for count in counts]
    walls = [sweep["wall_s"] for sweep in sweeps]
    intercept, slope, _ = fit_line(
        list(counts), [wall - floor_s for wall, floor_s in zip(walls, floors, strict=True)]
    )
    _, wall_slope, r2 = fit_line(list(counts), walls)
    largest = counts[-1]
    beyond_floor = walls[-1] - startup["ready_s"] - startup["ray_shutdown_s"] - floors[-1]
    figure = {
        "figure": "per_trial_overhead",
        "trials": list(counts),
        "wall_s": [round(wall, 3) for wall in walls],
        "floor_s": [round(seconds, 3) for seconds in floors],
        "slope_s": round(slope, 4),
        "intercept_s": round(intercept, 3),
        "wall_slope_s": round(wall_slope, 4),
        "wall_r2": round(r2, 5),
        f"mean_overhead_at_{largest}_s": round(beyond_floor / largest, 4),
    }
    points = ", ".join(f"{count}: {wall:.1f} s" for count, wall in zip(counts, walls, strict=True))
    bench.figure(figure)
    bench.row(
        "per-trial overhead, slope",
        f"{slope:.3f} s",
        f"wall - floor = {intercept:.1f} s + {slope:.3f} s x trials; wall {points}, R² {r2:.4f} "
        "(target: under 0.1 s, linear)",
    )
    bench.row(
        f"per-trial overhead, mean at {largest} trials",
        f"{beyond_floor / largest:.3f} s",
        f"(wall - Ray up and down - floor) / {largest}",
    )


PARTS: dict[str, Callable[[Bench], None]] = {
    "compare": compare,
    "fusion": fusion,
    "asha": asha,
    "diagnostics": diagnostics,
    "per-trial": per_trial,
}


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for label, value, detail in rows:
        print(f"{label:<{widths[0]}}  {value:>{widths[1]}}  {detail}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small workload for a smoke test; figures mean nothing",
    )
    parser.add_argument(
        "--only", action="append", choices=list(PARTS), help="run this part only (repeatable)"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep every run's stores, logs and checkpoints here (default: a temporary folder, "
        "removed)",
    )
    args = parser.parse_args()

    workload = QUICK if args.quick else FULL
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    bench = Bench(workload, workdir)
    start = machine() | {"workload": "quick" if args.quick else "full"}
    failure = None
    try:
        for part in args.only or PARTS:
            PARTS[part](bench)
    except BenchError as error:
        failure = error  # still print what the runs before it measured
    print(
        f"{platform.node()}: {start['cpus']} CPUs, load {start['load_1m']} at the start and "
        f"{os.getloadavg()[0]:.2f} at the end; "
        f"torch {start['torch']}, ray {start['ray']}, mlflow {start['mlflow']}; "
        f"{start['workload']} workload\n"
    )
    print_table([("figure", "value", "detail"), *bench.rows])
    print()
    for figure in [start | {"load_1m_end": round(os.getloadavg()[0], 2)}, *bench.figures]:
        print(json.dumps(figure))
    if failure is not None:
        sys.exit(f"bench/run.py: {failure}")
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
