"""What bench/run.py's parts share: the workloads, running a command as a fresh process,
reading a sweep's trials back from its MLflow store, and the machine's description."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

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
    trials=16,
    epochs=20,
    seeds=(0, 1, 2),
    trial_counts=(50, 100, 200),
    diagnostics_pairs=3,
    loop_repeats=15,
    loop_epochs=20,
)
QUICK = Workload(
    trials=4,
    epochs=3,
    seeds=(0,),
    trial_counts=(10, 20),
    diagnostics_pairs=1,
    loop_repeats=2,
    loop_epochs=3,
)


class BenchError(Exception):
    """A run that failed; the message says where its output is."""


@dataclass(frozen=True)
class Finished:
    wall_s: float
    started_at: float  # wall-clock time.time() just before the process started
    result: dict[str, Any]  # the last line of JSON it printed ({} if none)


def run_process(command: list[str], folder: Path) -> Finished:
    """Run `command` in `folder` (so stray outputs such as MLflow's ./mlruns land there), timed
    whole."""
    folder.mkdir(parents=True)
    # The project's modules without relying on how (or whether) it is installed.
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    }
    with open(folder / "stdout.log", "w") as stdout, open(folder / "stderr.log", "w") as stderr:
        started_at, started = time.time(), time.perf_counter()
        code = subprocess.run(command, cwd=folder, env=env, stdout=stdout, stderr=stderr).returncode
        wall_s = time.perf_counter() - started
    output = (folder / "stdout.log").read_text()
    if code != 0:
        tail = "\n".join((folder / "stderr.log").read_text().splitlines()[-15:])
        raise BenchError(f"{' '.join(command)}\nexited {code}; its output is in {folder}:\n{tail}")
    lines = [line for line in output.splitlines() if line.startswith("{")]
    return Finished(
        wall_s=wall_s, started_at=started_at, result=json.loads(lines[-1]) if lines else {}
    )


def read_trials(
    tracking_uri: str, trials: int, *, trial_tag: str = "sweep.trial_id"
) -> list[dict[str, Any]]:
    """Each trial's epochs trained, best val_acc and lr param, in sampling order, from a sweep's
    MLflow store.

    `trial_tag` is the tag that names a trial's run (the peer's MLflowLoggerCallback writes
    `trial_name`).
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
        found[
            int(trial_id.rsplit("_", 1)[1])
        ] = {  # Tune numbers trials in sampling order: <experiment>_00007
            "epochs": len({metric.step for metric in history}),
            "best_val_acc": max((metric.value for metric in history), default=float("nan")),
            "lr": run.data.params.get("lr"),
        }
    if sorted(found) != list(range(trials)):
        raise BenchError(
            f"{tracking_uri} holds runs of trials {sorted(found)}, expected 0 to {trials - 1}"
        )
    return [found[index] for index in range(trials)]


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares y = intercept + slope * x, and R²."""
    slope, intercept = statistics.linear_regression(xs, ys)
    mean = statistics.fmean(ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    total = sum((y - mean) ** 2 for y in ys)
    return intercept, slope, 1 - residual / total if total else 1.0


@dataclass(frozen=True)
class SweepCase:
    """One `sweep run` of the benchmark: what Bench.sweep was asked for."""

    scheduler: str
    seed: int
    trials: int
    epochs: int
    diagnostics: bool
    repeat: int  # 0 for the first run of these settings
    fuse: str


def sweep_name(case: SweepCase) -> str:
    """The sweep's label: its row in the table, and (made a slug) its folder."""
    name = f"sweep, {case.scheduler}, seed {case.seed}, {case.trials}x{case.epochs}" + (
        "" if case.diagnostics else ", diagnostics off"
    )
    name += "" if case.fuse == "auto" else f", fuse {case.fuse}"
    name += f", repeat {case.repeat + 1}" if case.repeat else ""
    return name


def sweep_command(case: SweepCase, tracking_uri: str, folder: Path) -> list[str]:
    """`sweep run` on bench/digits.yaml with the case's settings, its results under `folder`."""
    overrides = {
        "train.epochs": case.epochs,
        "early_stopping.scheduler": case.scheduler,
        "diagnostics.enabled": str(case.diagnostics).lower(),
        "train.fuse": case.fuse,
        "storage.path": folder / "results",
    }
    command = [sys.executable, "-m", "cli", "run", str(SWEEP_FILE), "--tracking-uri", tracking_uri]
    command += ["--seed", str(case.seed), "--num-samples", str(case.trials)]
    command += [
        argument for key, value in overrides.items() for argument in ("--set", f"{key}={value}")
    ]
    return command


def sweep_figure(
    case: SweepCase, wall_s: float, startup: dict[str, Any], per_trial: list[dict[str, Any]]
) -> dict[str, Any]:
    """The sweep's figure; its run phase is its wall time less Ray's start-up and shutdown."""
    return {
        "figure": "sweep",
        "scheduler": case.scheduler,
        "seed": case.seed,
        "trials": case.trials,
        "epochs": case.epochs,
        "diagnostics": case.diagnostics,
        "fuse": case.fuse,
        "repeat": case.repeat + 1,
        "wall_s": round(wall_s, 3),
        "run_phase_s": round(wall_s - startup["ready_s"] - startup["ray_shutdown_s"], 3),
        "total_epochs": sum(trial["epochs"] for trial in per_trial),
        "best_val_acc": max(trial["best_val_acc"] for trial in per_trial),
    }


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
            print(
                f"[{time.perf_counter() - self._started:6.0f} s] {label}",
                file=sys.stderr,
                flush=True,
            )
            self._done[label] = run(
                self.workdir / re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
            )
        return self._done[label]

    def ray_startup(self) -> dict[str, Any]:
        def probe(folder: Path) -> Finished:
            return run_process(
                [sys.executable, str(BENCH / "ray_startup.py"), str(SWEEP_FILE)], folder
            )

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
                f"new process to Ray up {startup['ready_s']:.1f} s (imports, data, ray.init); "
                f"ray.shutdown {startup['ray_shutdown_s']:.1f} s",
            )
            return startup

        return self._once("ray-startup", measure)

    def sweep(
        self,
        *,
        scheduler: str,
        seed: int,
        trials: int,
        epochs: int,
        diagnostics: bool = True,
        repeat: int = 0,
        fuse: str = "auto",
    ) -> dict[str, Any]:
        """`sweep run` on bench/digits.yaml (fused, as it is by default, or `fuse="off"`); its
        figure, plus `per_trial` (each trial's epochs, best val_acc, lr)."""
        startup = self.ray_startup()
        case = SweepCase(scheduler, seed, trials, epochs, diagnostics, repeat, fuse)
        name = sweep_name(case)

        def run(folder: Path) -> dict[str, Any]:
            tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
            finished = run_process(sweep_command(case, tracking_uri, folder), folder)
            per_trial = read_trials(tracking_uri, trials)
            figure = sweep_figure(case, finished.wall_s, startup, per_trial)
            self.figure(figure)
            self.row(
                name,
                f"{finished.wall_s:.1f} s",
                f"run phase {figure['run_phase_s']:.1f} s, {figure['total_epochs']} epochs, "
                f"best val_acc {figure['best_val_acc']:.4f}",
            )
            return figure | {"per_trial": per_trial}

        return self._once(name, run)

    def peer(self, *, scheduler: str, seed: int) -> dict[str, Any]:
        trials, epochs = self.workload.trials, self.workload.epochs
        name = f"peer, {scheduler}, seed {seed}, {trials}x{epochs}"

        def run(folder: Path) -> dict[str, Any]:
            command = [
                sys.executable,
                str(BENCH / "peer.py"),
                "--trials",
                str(trials),
                "--epochs",
                str(epochs),
            ]
            command += ["--scheduler", scheduler, "--seed", str(seed)]
            command += [
                "--tracking-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--storage",
                str(folder / "results"),
            ]
            finished = run_process(command, folder)
            per_trial = read_trials(
                f"sqlite:///{folder / 'mlflow.db'}", trials, trial_tag="trial_name"
            )
            figure = finished.result | {"process_wall_s": round(finished.wall_s, 3)}
            self.figure(figure)
            self.row(
                name,
                f"{finished.wall_s:.1f} s",
                f"ray.init {figure['ray_init_s']:.1f} s, fit {figure['fit_s']:.1f} s, "
                f"{figure['total_epochs']} epochs, "
                f"best val_acc {figure['best_val_acc']:.4f}",
            )
            return figure | {"per_trial": per_trial}

        return self._once(name, run)

    def floor(self, *, of: dict[str, Any]) -> dict[str, Any]:
        """The floor of sweep `of`: its trials, each for the epochs it trained there."""
        epochs = [trial["epochs"] for trial in of["per_trial"]]
        name = f"floor, {of['scheduler']}, seed {of['seed']}, {of['trials']}x{of['epochs']}"

        def run(folder: Path) -> dict[str, Any]:
            command = [
                sys.executable,
                str(BENCH / "floor.py"),
                str(SWEEP_FILE),
                "--seed",
                str(of["seed"]),
            ]
            command += [
                "--trials",
                str(of["trials"]),
                "--epochs",
                str(of["epochs"]),
                "--epochs-per-trial",
                ",".join(map(str, epochs)),
            ]
            figure = run_process(command, folder).result
            if [trial["lr"] for trial in of["per_trial"]] != [
                str(lr) for lr in figure.pop("trial_lr")
            ]:
                raise BenchError(
                    f"{name}: the floor sampled other trials than the sweep (compare their lr)"
                )
            self.figure(
                {key: value for key, value in figure.items() if key != "trial_s"}
                | {"scheduler": of["scheduler"]}
            )
            self.row(
                name + f" (/{figure['concurrency']})",
                f"{figure['floor_s']:.1f} s",
                f"{figure['train_s']:.1f} s of training, {figure['total_epochs']} epochs, best "
                f"val_acc {figure['best_val_acc']:.4f}",
            )
            return figure

        return self._once(name, run)

    def diagnostics_loop(self) -> dict[str, Any]:
        """bench/diagnostics_overhead.py: the training loop alone, diagnostics on and off,
        interleaved."""

        def run(folder: Path) -> dict[str, Any]:
            command = [sys.executable, str(BENCH / "diagnostics_overhead.py")]
            command += [
                "--repeats",
                str(self.workload.loop_repeats),
                "--epochs",
                str(self.workload.loop_epochs),
            ]
            return run_process(command, folder).result

        return self._once("diagnostics, training loop", run)


def machine() -> dict[str, Any]:
    return {
        "figure": "machine",
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_1m": round(os.getloadavg()[0], 2),
        **{package: version(package) for package in ("torch", "ray", "mlflow")},
    }
