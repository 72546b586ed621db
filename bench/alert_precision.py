"""How often an update-ratio alert points at a poor trial: alerts among the top 3, and alerted
trials in the bottom half.

    python bench/alert_precision.py SWEEP_FILE [--seeds 0 1 2] [--set key=value ...]
    python bench/alert_precision.py --tracking-uri URI --experiment NAME   # a sweep that already
    ran
    python bench/alert_precision.py search.yaml --code ../main             # the same, with another
    checkout's sweep

Runs the sweep once per seed, each with a fresh sqlite store in a temporary folder
(`sweep run` as a subprocess), ranks its trials by their best val_acc as
`sweep report` does, and prints per sweep: the alerted trials with their rank, how
many of the top 3 alerted (target 0), and the share of alerted trials in the bottom
half (target: most), plus one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sweeps.driver.analysis.report import load_report
from sweeps.driver.tracking.queries import SweepReader


def precision(tracking_uri: str, experiment: str) -> dict:
    report = load_report(SweepReader(tracking_uri), experiment, importance=False)
    ranked = [row for row in report.trials if row.best is not None]
    alerted = [(rank, row) for rank, row in enumerate(ranked, 1) if row.alerts]
    compared = len(report.at_rung())
    bottom_half = sum(rank > len(ranked) / 2 for rank, _ in alerted)
    bottom_half_at_rung = sum((row.rank_at_rung or 0) > compared / 2 for _, row in alerted)
    return {
        "sweep": report.name,
        "trials": len(ranked),
        "rung": report.rung,
        "alerted": [
            {
                "rank": rank,
                "rank_at_rung": row.rank_at_rung,
                "trial": row.name,
                "best": round(row.best or 0.0, 4),
                "alerts": row.alerts,
            }
            for rank, row in alerted
        ],
        "alerted_in_top_3": sum(rank <= 3 for rank, _ in alerted),
        # Ranked by best val_acc, and at the common rung (a trial ASHA let run on looks better by
        # its best).
        "alerted_in_bottom_half": f"{bottom_half}/{len(alerted)}",
        "alerted_in_bottom_half_at_rung": f"{bottom_half_at_rung}/{len(alerted)}",
        "best": round(ranked[0].best or 0.0, 4) if ranked else None,
    }


def run_once(sweep_file: str, seed: int, overrides: list[str], code: Path = REPO) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        sets = [item for override in overrides for item in ("--set", override)]
        command = [
            sys.executable,
            "-m",
            "cli",
            "run",
            str(Path(sweep_file).resolve()),
            "--tracking-uri",
            uri,
            "--seed",
            str(seed),
            *sets,
        ]
        command += ["--set", f"storage.path={folder}/results", "--experiment", "bench"]
        started = time.monotonic()
        result = subprocess.run(
            command,
            cwd=folder,
            env=os.environ | {"PYTHONPATH": str(code)},
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(result.stdout[-3000:] + result.stderr[-3000:])
        return precision(uri, "bench") | {
            "seed": seed,
            "wall_s": round(time.monotonic() - started, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_file", nargs="?")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--tracking-uri")
    parser.add_argument("--experiment")
    parser.add_argument(
        "--code",
        type=Path,
        default=REPO,
        help="the checkout whose `sweep run` trains (default: this one)",
    )
    args = parser.parse_args()
    if args.tracking_uri:
        results = [precision(args.tracking_uri, args.experiment)]
    else:
        results = [
            run_once(args.sweep_file, seed, args.overrides, args.code.resolve())
            for seed in args.seeds
        ]
    for result in results:
        print(
            f"{result['sweep']} (seed {result.get('seed', '-')}): {result['trials']} trials, "
            f"best {result['best']}, "
            f"alerted in the top 3: {result['alerted_in_top_3']}, alerted trials in the bottom "
            f"half: {result['alerted_in_bottom_half']} "
            f"(at epoch {result['rung']}: {result['alerted_in_bottom_half_at_rung']})"
        )
        for alerted in result["alerted"]:
            print(
                f"  #{alerted['rank']} (#{alerted['rank_at_rung']} at epoch {result['rung']}) "
                f"{alerted['trial']} ({alerted['best']}): {alerted['alerts']}"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
