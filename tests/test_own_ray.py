"""The Ray a sweep starts for itself (no --address): its idle workers import what trials
import before any trial asks for one, it keeps no more idle workers than trials run at once,
and it stops without leaving a process behind."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sweeps.config import validate_sweep
from sweeps.launch import trials_at_once
from tests.conftest import REPO

# Starts Ray with room for one trial at a time, waits until the idle workers are down to
# that one, asks for an actor (as Tune asks for a trial's) and says what it found, then
# stops Ray as `sweep run` does and says which of its processes are still running.
OWN_RAY = """
import json, os, sys, time
from pathlib import Path
import ray
from sweeps.launch import TRIAL_WORKER_MODULES, connect_ray, stop_own_ray

assert connect_ray(None, 1, verbose=False)

def descendants():  # {pid: title} of the live processes under this one, from /proc
    parents, titles = {}, {}
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            state, parent = (folder / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                parents[folder.name] = parent
                titles[folder.name] = (folder / "cmdline").read_bytes().split(b"\\0")[0].decode()
        except (OSError, ValueError):
            continue

    def ours(pid):
        while pid in parents:
            pid = parents[pid]
            if pid == str(os.getpid()):
                return True
        return False

    return {pid: title for pid, title in titles.items() if ours(pid)}

def idle_workers():  # Ray titles them ray::IDLE
    return [pid for pid, title in descendants().items() if title.startswith("ray::IDLE")]

deadline = time.monotonic() + 90
while len(idle_workers()) > 1 and time.monotonic() < deadline:
    time.sleep(0.2)
idle_left = len(idle_workers())

@ray.remote(num_cpus=1)
class Trial:
    def __init__(self):
        self.found = [name for name in TRIAL_WORKER_MODULES if name in sys.modules]

    def modules(self):
        return self.found

found = ray.get(Trial.remote().modules.remote())
stop_own_ray()
deadline = time.monotonic() + 30
while descendants() and time.monotonic() < deadline:
    time.sleep(0.2)
print(json.dumps({"idle_left": idle_left, "found": found, "left_running": sorted(descendants().values())}))
"""


@pytest.mark.slow
def test_the_sweeps_own_ray_has_torch_imported_before_the_first_trial_asks_and_stops_whole():
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)  # the session's cluster: this test starts a Ray of its own
    result = subprocess.run([sys.executable, "-c", OWN_RAY], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # Ray starts a worker per CPU; with one trial at a time, one idle worker is kept.
    assert outcome["idle_left"] <= 1
    # The trial's worker had imported them before the trial's own code ran.
    assert outcome["found"] == ["ray.tune", "torch", "torch._dynamo"]
    # Stopping the autoscaler's monitor ahead of Ray's shutdown leaves nothing behind.
    assert outcome["left_running"] == []


@pytest.mark.parametrize(
    ("search", "resources", "expected"),
    [
        ({"max_concurrent": 2, "num_samples": 16}, {"cpus_per_trial": 0.001}, 2),
        ({"max_concurrent": 8, "num_samples": 3}, {"cpus_per_trial": 0.001}, 3),  # fewer trials than the limit
        ({"max_concurrent": 1000, "num_samples": 1000}, {"cpus_per_trial": 1}, "cpus"),  # the CPUs are the limit
        ({"max_concurrent": 1000, "num_samples": 1000}, {"cpus_per_trial": 1000}, 1),  # one trial always runs
    ],
)
def test_trials_at_once_is_the_smallest_limit(search, resources, expected):
    config = validate_sweep({"name": "limits", "params": {"lr": 0.01}, "search": search, "resources": resources}, source="limits.yaml")
    cpus = len(os.sched_getaffinity(0))
    assert trials_at_once(config) == (cpus if expected == "cpus" else expected)
