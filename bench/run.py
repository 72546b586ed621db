"""Issue 8's benchmark in one go: `sweep run` against an idiomatic Ray Tune peer and a plain-PyTorch floor.

    python bench/run.py [--quick] [--only compare|asha|diagnostics|per-trial] [--workdir DIR]

Every run is a fresh process on bench/digits.yaml's workload (16 trials of a 3x128 MLP
on digits, 20 epochs, 2 trials at a time on 1 CPU each) with its own new sqlite MLflow
store and Ray storage folder in the work folder (a temporary one unless --workdir):

  compare      `sweep run` with ASHA and with `scheduler: none` (also with diagnostics
               off, whose MLflow content is the closest to the peer's); bench/peer.py,
               the same sweep written as Ray Tune's PyTorch examples write it, on both;
               the floor (bench/floor.py: the same trials' epochs in one plain PyTorch
               process, divided by the concurrency); Ray's start-up; the ratios
               sweep/peer and sweep/floor.
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
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SWEEP_FILE = BENCH / "digits.yaml"


@dataclass(frozen=True)
class Workload:
    trials: int
    epochs: int
    seeds: tuple[int, ...]  # ASHA against no early stopping
    trial_counts: tuple[int, ...]  # per-trial overhead: sweeps of this many 1-epoch trials
    diagnostics_pairs: int  # sweeps with diagnostics on and off, one after the other
    loop_repeats: int  # bench/diagnostics_overhead.py's --repeats and --epochs
    loop_epochs: int


FULL = Workload(
    trials=16, epochs=20, seeds=(0, 1, 2), trial_counts=(50, 100, 200), diagnostics_pairs=3, loop_repeats=15, loop_epochs=20
)
QUICK = Workload(trials=4, epochs=3, seeds=(0,), trial_counts=(10, 20), diagnostics_pairs=1, loop_repeats=2, loop_epochs=3)


class BenchError(Exception):
    """A run that failed; the message says where its output is."""


@dataclass(frozen=True)
class Finished:
    wall_s: float
    started_at: float  # wall-clock time.time() just before the process started
    result: dict[str, Any]  # the last line of JSON it printed ({} if none)


def run_process(command: list[str], folder: Path) -> Finished:
    """Run `command` in `folder` (so stray outputs such as MLflow's ./mlruns land there), timed whole."""
    folder.mkdir(parents=True)
    # The project's modules without relying on how (or whether) it is installed.
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(folder / "stdout.log", "w") as stdout, open(folder / "stderr.log", "w") as stderr:
        started_at, started = time.time(), time.perf_counter()
        code = subprocess.run(command, cwd=folder, env=env, stdout=stdout, stderr=stderr).returncode
        wall_s = time.perf_counter() - started
    output = (folder / "stdout.log").read_text()
    if code != 0:
        tail = "\n".join((folder / "stderr.log").read_text().splitlines()[-15:])
        raise BenchError(f"{' '.join(command)}\nexited {code}; its output is in {folder}:\n{tail}")
    lines = [line for line in output.splitlines() if line.startswith("{")]
    return Finished(wall_s=wall_s, started_at=started_at, result=json.loads(lines[-1]) if lines else {})


def read_trials(tracking_uri: str, trials: int, *, trial_tag: str = "sweep.trial_id") -> list[dict[str, Any]]:
    """Each trial's epochs trained, best val_acc and lr param, in sampling order, from a sweep's MLflow store.

    `trial_tag` is the tag that names a trial's run (the peer's MLflowLoggerCallback writes `trial_name`).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    found = {}
    for run in client.search_runs(experiment_ids, max_results=50_000):
        trial_id = run.data.tags.get(trial_tag)  # only trials' runs have one, not the sweep's
        if trial_id is None:
            continue
        history = client.get_metric_history(run.info.run_id, "val_acc")
        found[int(trial_id.rsplit("_", 1)[1])] = {  # Tune numbers trials in sampling order: <experiment>_00007
            "epochs": len({metric.step for metric in history}),
            "best_val_acc": max((metric.value for metric in history), default=float("nan")),
            "lr": run.data.params.get("lr"),
        }
    if sorted(found) != list(range(trials)):
        raise BenchError(f"{tracking_uri} holds runs of trials {sorted(found)}, expected 0 to {trials - 1}")
    return [found[index] for index in range(trials)]


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = intercept + slope * x, and R²."""
    slope, intercept = statistics.linear_regression(xs, ys)
    mean = statistics.fmean(ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    total = sum((y - mean) ** 2 for y in ys)
    return intercept, slope, 1 - residual / total if total else 1.0


class Bench:
    """Runs what the parts ask for, each run once, and collects the table's rows and the figures."""

    def __init__(self, workload: Workload, workdir: Path) -> None:
        self.workload = workload
        self.workdir = workdir
        self.rows: list[tuple[str, str, str]] = []
        self.figures: list[dict[str, Any]] = []
        self._done: dict[str, Any] = {}
        self._started = time.perf_counter()

    def figure(self, figure: dict[str, Any]) -> None:
        self.figures.append(figure)

    def row(self, label: str, value: str, detail: str = "") -> None:
        self.rows.append((label, value, detail))

    def _once(self, label: str, run: Callable[[Path], Any]) -> Any:
        if label not in self._done:
            print(f"[{time.perf_counter() - self._started:6.0f} s] {label}", file=sys.stderr, flush=True)
            self._done[label] = run(self.workdir / re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-"))
        return self._done[label]

    def ray_startup(self) -> dict[str, Any]:
        def probe(folder: Path) -> Finished:
            return run_process([sys.executable, str(BENCH / "ray_startup.py"), str(SWEEP_FILE)], folder)

        def measure(folder: Path) -> dict[str, Any]:
            probe(folder / "warm-up")  # a first process reads Ray, torch and friends from disk
            finished = probe(folder / "measured")
            startup = finished.result | {
                "wall_s": round(finished.wall_s, 3),
                "ready_s": round(finished.result["ray_up_at"] - finished.started_at, 3),
            }
            del startup["ray_up_at"]
            self.figure(startup)
            self.row(
                "Ray start-up (ray.init)",
                f"{startup['ray_init_s']:.1f} s",
                f"new process to Ray up {startup['ready_s']:.1f} s (imports, data, ray.init); ray.shutdown {startup['ray_shutdown_s']:.1f} s",
            )
            return startup

        return self._once("ray-startup", measure)

    def sweep(
        self, *, scheduler: str, seed: int, trials: int, epochs: int, diagnostics: bool = True, repeat: int = 0
    ) -> dict[str, Any]:
        """`sweep run` on bench/digits.yaml; its figure, plus `per_trial` (each trial's epochs, best val_acc, lr)."""
        startup = self.ray_startup()
        name = f"sweep, {scheduler}, seed {seed}, {trials}x{epochs}" + ("" if diagnostics else ", diagnostics off")
        name += f", repeat {repeat + 1}" if repeat else ""

        def run(folder: Path) -> dict[str, Any]:
            tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
            overrides = {
                "train.epochs": epochs,
                "early_stopping.scheduler": scheduler,
                "diagnostics.enabled": str(diagnostics).lower(),
                "storage.path": folder / "results",
            }
            command = [sys.executable, "-m", "cli", "run", str(SWEEP_FILE), "--tracking-uri", tracking_uri]
            command += ["--seed", str(seed), "--num-samples", str(trials)]
            command += [argument for key, value in overrides.items() for argument in ("--set", f"{key}={value}")]
            finished = run_process(command, folder)
            per_trial = read_trials(tracking_uri, trials)
            wall_s = finished.wall_s
            figure = {
                "figure": "sweep",
                "scheduler": scheduler,
                "seed": seed,
                "trials": trials,
                "epochs": epochs,
                "diagnostics": diagnostics,
                "repeat": repeat + 1,
                "wall_s": round(wall_s, 3),
                "run_phase_s": round(wall_s - startup["ready_s"] - startup["ray_shutdown_s"], 3),
                "total_epochs": sum(trial["epochs"] for trial in per_trial),
                "best_val_acc": max(trial["best_val_acc"] for trial in per_trial),
            }
            self.figure(figure)
            self.row(
                name,
                f"{wall_s:.1f} s",
                f"run phase {figure['run_phase_s']:.1f} s, {figure['total_epochs']} epochs, best val_acc {figure['best_val_acc']:.4f}",
            )
            return figure | {"per_trial": per_trial}

        return self._once(name, run)

    def peer(self, *, scheduler: str, seed: int) -> dict[str, Any]:
        trials, epochs = self.workload.trials, self.workload.epochs
        name = f"peer, {scheduler}, seed {seed}, {trials}x{epochs}"

        def run(folder: Path) -> dict[str, Any]:
            command = [sys.executable, str(BENCH / "peer.py"), "--trials", str(trials), "--epochs", str(epochs)]
            command += ["--scheduler", scheduler, "--seed", str(seed)]
            command += ["--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--storage", str(folder / "results")]
            finished = run_process(command, folder)
            per_trial = read_trials(f"sqlite:///{folder / 'mlflow.db'}", trials, trial_tag="trial_name")
            figure = finished.result | {"process_wall_s": round(finished.wall_s, 3)}
            self.figure(figure)
            self.row(
                name,
                f"{finished.wall_s:.1f} s",
                f"ray.init {figure['ray_init_s']:.1f} s, fit {figure['fit_s']:.1f} s, {figure['total_epochs']} epochs, "
                f"best val_acc {figure['best_val_acc']:.4f}",
            )
            return figure | {"per_trial": per_trial}

        return self._once(name, run)

    def floor(self, *, of: dict[str, Any]) -> dict[str, Any]:
        """The floor of sweep `of`: its trials, each for the epochs it trained there."""
        epochs = [trial["epochs"] for trial in of["per_trial"]]
        name = f"floor, {of['scheduler']}, seed {of['seed']}, {of['trials']}x{of['epochs']}"

        def run(folder: Path) -> dict[str, Any]:
            command = [sys.executable, str(BENCH / "floor.py"), str(SWEEP_FILE), "--seed", str(of["seed"])]
            command += ["--trials", str(of["trials"]), "--epochs", str(of["epochs"]), "--epochs-per-trial", ",".join(map(str, epochs))]
            figure = run_process(command, folder).result
            if [trial["lr"] for trial in of["per_trial"]] != [str(lr) for lr in figure.pop("trial_lr")]:
                raise BenchError(f"{name}: the floor sampled other trials than the sweep (compare their lr)")
            self.figure({key: value for key, value in figure.items() if key != "trial_s"} | {"scheduler": of["scheduler"]})
            self.row(
                name + f" (/{figure['concurrency']})",
                f"{figure['floor_s']:.1f} s",
                f"{figure['train_s']:.1f} s of training, {figure['total_epochs']} epochs, best val_acc {figure['best_val_acc']:.4f}",
            )
            return figure

        return self._once(name, run)

    def diagnostics_loop(self) -> dict[str, Any]:
        """bench/diagnostics_overhead.py: the training loop alone, diagnostics on and off, interleaved."""

        def run(folder: Path) -> dict[str, Any]:
            command = [sys.executable, str(BENCH / "diagnostics_overhead.py")]
            command += ["--repeats", str(self.workload.loop_repeats), "--epochs", str(self.workload.loop_epochs)]
            return run_process(command, folder).result

        return self._once("diagnostics, training loop", run)


def compare(bench: Bench) -> None:
    trials, epochs = bench.workload.trials, bench.workload.epochs
    # The peer logs each trial's params and metrics; `sweep run` also logs diagnostics
    # unless they are off, which makes its MLflow content the closest to the peer's.
    for scheduler, diagnostics in (("none", True), ("none", False), ("asha", True)):
        sweep = bench.sweep(scheduler=scheduler, seed=0, trials=trials, epochs=epochs, diagnostics=diagnostics)
        peer = bench.peer(scheduler=scheduler, seed=0)
        if [trial["lr"] for trial in peer["per_trial"]] != [trial["lr"] for trial in sweep["per_trial"]]:
            raise BenchError(f"the peer sampled other trials than the sweep (compare their lr in {bench.workdir})")
        floor = bench.floor(of=sweep)
        figure = {
            "figure": "ratios",
            "scheduler": scheduler,
            "diagnostics": diagnostics,
            "sweep_over_peer": round(sweep["wall_s"] / peer["process_wall_s"], 4),
            "peer_over_sweep": round(peer["process_wall_s"] / sweep["wall_s"], 3),
            "sweep_run_phase_over_floor": round(sweep["run_phase_s"] / floor["floor_s"], 3),
            "sweep_over_floor": round(sweep["wall_s"] / floor["floor_s"], 3),
        }
        which = scheduler + ("" if diagnostics else ", diagnostics off")
        bench.figure(figure)
        bench.row(
            f"sweep/peer, {which}, whole process",
            f"{figure['sweep_over_peer']:.3f}",
            f"the peer takes {figure['peer_over_sweep']:.1f}x as long" + (" (target: at least 5x)" if scheduler == "none" else ""),
        )
        bench.row(
            f"sweep/floor, {which}, run phase",
            f"{figure['sweep_run_phase_over_floor']:.2f}",
            f"whole process {figure['sweep_over_floor']:.2f} (target for the run phase: at most 2)",
        )


def asha(bench: Bench) -> None:
    trials, epochs = bench.workload.trials, bench.workload.epochs
    seeds = []
    for seed in bench.workload.seeds:
        early = bench.sweep(scheduler="asha", seed=seed, trials=trials, epochs=epochs)
        full = bench.sweep(scheduler="none", seed=seed, trials=trials, epochs=epochs)
        seeds.append({
            "seed": seed,
            "best_val_acc_asha": early["best_val_acc"],
            "best_val_acc_none": full["best_val_acc"],
            "points": round(100 * (early["best_val_acc"] - full["best_val_acc"]), 2),
            "epochs_asha": early["total_epochs"],
            "epochs_none": full["total_epochs"],
        })
    points = statistics.fmean(seed["points"] for seed in seeds)
    share = sum(seed["epochs_asha"] for seed in seeds) / sum(seed["epochs_none"] for seed in seeds)
    figure = {"figure": "asha_vs_none", "mean_points": round(points, 2), "epochs_share": round(share, 4), "seeds": seeds}
    per_seed = ", ".join(f"seed {seed['seed']}: {seed['points']:+.1f}" for seed in seeds)
    bench.figure(figure)
    bench.row(f"ASHA - none, best val_acc, {len(seeds)} seeds", f"{points:+.2f} pts", f"{per_seed} (target: within 1 point)")
    bench.row(f"ASHA / none, epochs, {len(seeds)} seeds", f"{share:.0%}", "target: at most 40%")


def diagnostics(bench: Bench) -> None:
    trials, epochs = bench.workload.trials, bench.workload.epochs
    on, off = [], []
    for repeat in range(bench.workload.diagnostics_pairs):  # interleaved, so a drifting machine load hits both alike
        on.append(bench.sweep(scheduler="none", seed=0, trials=trials, epochs=epochs, repeat=repeat))
        off.append(bench.sweep(scheduler="none", seed=0, trials=trials, epochs=epochs, diagnostics=False, repeat=repeat))
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
        f"median {median(on, 'run_phase_s'):.1f} s vs {median(off, 'run_phase_s'):.1f} s of {len(on)} pairs; "
        f"whole process {figure['whole_process']:+.1%} (target: under 5%)",
    )
    bench.row(
        "diagnostics on/off, training loop",
        f"{loop['overhead']:+.1%}",
        f"{loop['epoch_ms_on']} vs {loop['epoch_ms_off']} ms per epoch, median of {bench.workload.loop_repeats}",
    )


def per_trial(bench: Bench) -> None:
    counts = bench.workload.trial_counts
    sweeps = [bench.sweep(scheduler="none", seed=0, trials=count, epochs=1) for count in counts]
    startup = bench.ray_startup()
    # The smaller sweeps' trials are the first ones of the largest: the same seed samples them first.
    floor = bench.floor(of=sweeps[-1])
    floors = [sum(floor["trial_s"][:count]) / floor["concurrency"] for count in counts]
    walls = [sweep["wall_s"] for sweep in sweeps]
    intercept, slope, _ = fit_line(list(counts), [wall - floor_s for wall, floor_s in zip(walls, floors)])
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
    points = ", ".join(f"{count}: {wall:.1f} s" for count, wall in zip(counts, walls))
    bench.figure(figure)
    bench.row(
        "per-trial overhead, slope",
        f"{slope:.3f} s",
        f"wall - floor = {intercept:.1f} s + {slope:.3f} s x trials; wall {points}, R² {r2:.4f} (target: under 0.1 s, linear)",
    )
    bench.row(
        f"per-trial overhead, mean at {largest} trials",
        f"{beyond_floor / largest:.3f} s",
        f"(wall - Ray up and down - floor) / {largest}",
    )


PARTS: dict[str, Callable[[Bench], None]] = {"compare": compare, "asha": asha, "diagnostics": diagnostics, "per-trial": per_trial}


def machine() -> dict[str, Any]:
    return {
        "figure": "machine",
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
        **{package: version(package) for package in ("torch", "ray", "mlflow")},
    }


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for label, value, detail in rows:
        print(f"{label:<{widths[0]}}  {value:>{widths[1]}}  {detail}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small workload for a smoke test; figures mean nothing")
    parser.add_argument("--only", action="append", choices=list(PARTS), help="run this part only (repeatable)")
    parser.add_argument("--workdir", type=Path, help="keep every run's stores, logs and checkpoints here (default: a temporary folder, removed)")
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
    print(f"{platform.node()}: {start['cpus']} CPUs, load {start['load_1m']} at the start and {os.getloadavg()[0]:.2f} at the end; "
          f"torch {start['torch']}, ray {start['ray']}, mlflow {start['mlflow']}; {start['workload']} workload\n")
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
