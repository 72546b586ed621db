"""What each piece of start-up machinery saves on the default sweep, whole process.

    python bench/startup_pieces.py --rounds 5 --workdir /tmp/pieces

Each round runs `sweep run search.yaml` once with every piece in place and once with
each piece taken out (the order shuffled per round, each run in a fresh folder with a
fresh sqlite store), so the machine's drift lands on every variant alike. A piece is
taken out by putting Ray's own behaviour back in the driver process before the command
runs. Prints one JSON line per run and a table of medians.

Commit ce09cff measured four more pieces this way (kept MLflow tables, a store made aside,
no Ray API server, prestarted workers); each saved under half a second and was removed
(bench/RESULTS.md). What is left is the one that pays.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# piece -> Python run in the driver before `sweep` starts, putting back what Ray or MLflow does
# alone
WITHOUT = {
    "monitor-killed-first": (
        "from sweeps.driver.cluster import ray_cluster;"
        " ray_cluster.RAY_INTERNALS['autoscaler monitor'] = (lambda: None, '')"
    ),
}


def run_once(variant: str, folder: Path) -> float:
    folder.mkdir(parents=True)
    (folder / "search.yaml").write_text((REPO / "search.yaml").read_text())
    prelude = WITHOUT.get(variant, "pass")
    code = (
        f"import sys; {prelude}; sys.argv = ['sweep', 'run', 'search.yaml']; import cli; cli.main()"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument(
        "--only", action="append", choices=sorted(WITHOUT), help="pieces to take out"
    )
    args = parser.parse_args()
    variants = ["all", *(args.only or WITHOUT)]
    times: dict[str, list[float]] = {variant: [] for variant in variants}
    run_once("all", args.workdir / "warm-up")  # the kept tables and the OS's file cache, once
    for round_number in range(args.rounds):
        order = random.Random(round_number).sample(variants, len(variants))
        for variant in order:
            elapsed = run_once(variant, args.workdir / f"{round_number}-{variant}")
            times[variant].append(elapsed)
            print(json.dumps({"round": round_number, "variant": variant, "s": round(elapsed, 2)}))
    base = statistics.median(times["all"])
    print(
        "\n| without | median s | saving s | runs |\n| --- | --- | --- | --- |\n| (nothing) | "
        f"{base:.2f} | | {len(times['all'])} |"
    )
    for variant in variants[1:]:
        median = statistics.median(times[variant])
        print(f"| {variant} | {median:.2f} | {median - base:+.2f} | {len(times[variant])} |")


if __name__ == "__main__":
    main()
