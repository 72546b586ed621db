#!/usr/bin/env bash
# Issue 16's GPU benchmark in ONE command, under 8 minutes on one GPU:
#
#     bench/gpu.sh [WHEELS] [bench/gpu.py options]
#
# For a GPU machine with Python 3.12 and PyTorch (CUDA) but no network and none of Ray,
# MLflow or pydantic: what is missing is installed with --no-index from WHEELS (default
# ./wheels), a folder prepared beforehand on a machine with network (see
# bench/gpu-requirements.txt for the `pip download` line). Then bench/gpu.py measures a
# trial's loop against a plain one, 1/4/8 processes a GPU, fused against unfused
# training, `gpus_per_trial: auto`'s probe, and `sweep run` against a Ray-example peer,
# and prints a table and one line of JSON per figure (for bench/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
wheels="${1:-wheels}"
[ $# -gt 0 ] && shift
if ! python -c "import ray.tune, mlflow, pydantic, click, yaml, rich, sklearn, PIL, matplotlib" 2>/dev/null; then
    python -m pip install --quiet --no-index --find-links "$wheels" -r bench/gpu-requirements.txt
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" RAY_USAGE_STATS_ENABLED=0
# 8 minutes in all: what the install left of them, less 20 s to spare.
exec timeout --signal=INT $((460 - SECONDS)) python bench/gpu.py "$@"
