"""The one door to Ray: every internal it reaches is still there in the installed Ray, and
the Ray a sweep starts for itself (no --address) stops without leaving a process behind,
though its autoscaler monitor is killed ahead of Ray's own shutdown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import ray

from sweeps.driver.cluster import ray_cluster
from tests.conftest import REPO


class _TrialWithCheckpoint:
    """Stands in for a Tune Trial: the internal read is of Ray's own _TrainingResult."""

    def __init__(self) -> None:
        from ray.train._internal.session import _TrainingResult
        from ray.tune import Checkpoint

        self.latest_checkpoint_result = _TrainingResult(
            checkpoint=Checkpoint("/nowhere"), metrics={"epoch": 3}
        )


# What each internal needs to be reached, on a machine with no Ray running.
REACH_ARGUMENTS = {"a trial's latest checkpoint result": (_TrialWithCheckpoint,)}


@pytest.mark.parametrize("name", sorted(ray_cluster.RAY_INTERNALS))
def test_every_ray_internal_the_sweep_reaches_is_still_there(name):
    reach, what = ray_cluster.RAY_INTERNALS[name]
    if name == "autoscaler monitor":
        # Reached through a running node: check the names it uses instead.
        from ray._private import ray_constants, worker
        from ray._private.node import Node

        found = (
            hasattr(Node, "_kill_process_type")
            and hasattr(worker, "_global_node")
            and hasattr(ray_constants, "PROCESS_TYPE_MONITOR")
        )
    else:
        arguments = [make() for make in REACH_ARGUMENTS.get(name, ())]
        try:
            found = reach(*arguments) not in (None, False)
        except (AttributeError, ImportError, TypeError):
            found = False
    assert found, (
        f"Ray {ray.__version__} no longer has {what} (checked against Ray "
        f"{ray_cluster.RAY_CHECKED_VERSION}); "
        "the sweep falls back to Ray's own behaviour: see sweeps/driver/cluster/ray_cluster.py "
        f"({name})"
    )


def test_a_trial_whose_checkpoint_result_is_read_and_moved_keeps_its_metrics():
    trial = _TrialWithCheckpoint()
    assert ray_cluster.recorded_checkpoint(trial).path == "/nowhere"
    ray_cluster.restore_from_epoch(trial, {"epoch": 5, "val_acc": 0.9})
    assert trial.latest_checkpoint_result.metrics == {
        "epoch": 5,
        "val_acc": 0.9,
        "training_iteration": 5,
    }


# Starts Ray as `sweep run` does, runs an actor (as Tune runs a trial), stops Ray as
# `sweep run` does and says which of its processes are still running.
OWN_RAY = """
import json, os, sys, time
from pathlib import Path
import ray
from sweeps.driver.cluster import ray_cluster
from sweeps.driver.cluster.ray_cluster import connect_ray, stop_own_ray

if sys.argv[1] == "monitor-internal-gone":  # as after an upgrade that moved it: Ray's own shutdown
    def gone():
        raise AttributeError("moved")
    ray_cluster.RAY_INTERNALS["autoscaler monitor"] = (gone, "gone")

def descendants():  # {pid: command line} of the live processes under this one, from /proc
    parents, titles = {}, {}
    for folder in Path("/proc").glob("[0-9]*"):
        try:
            state, parent = (folder / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            if state != "Z":
                parents[folder.name] = parent
                command = (folder / "cmdline").read_bytes()
                titles[folder.name] = command.replace(b"\\0", b" ").decode()
        except (OSError, ValueError):
            continue

    def ours(pid):
        while pid in parents:
            pid = parents[pid]
            if pid == str(os.getpid()):
                return True
        return False

    return {pid: title for pid, title in titles.items() if ours(pid)}

assert connect_ray(None, verbose=False)

@ray.remote(num_cpus=1)
class Trial:
    def pid(self):
        return os.getpid()

assert ray.get(Trial.remote().pid.remote()) != os.getpid()
while_running = sorted(descendants().values())
stop_own_ray()
deadline = time.monotonic() + 30
while descendants() and time.monotonic() < deadline:
    time.sleep(0.2)
print(json.dumps({"while_running": while_running, "left_running": sorted(descendants().values())}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("monitor", ["monitor-killed-first", "monitor-internal-gone"])
def test_the_sweeps_own_ray_stops_whole(monitor):
    """With the monitor killed first, and with Ray's own shutdown where the internal is gone."""
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)  # the session's cluster: this test starts a Ray of its own
    command = [sys.executable, "-c", OWN_RAY, monitor]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # The autoscaler's monitor, which the sweep kills first, was among Ray's processes.
    assert any("autoscaler/_private/monitor.py" in command for command in outcome["while_running"])
    assert outcome["left_running"] == []


START_AND_STOP_RAY = """
import time
from sweeps.driver.cluster import ray_cluster
assert ray_cluster.connect_ray(None, verbose=False)
time.sleep(3)  # ray.init waited for the dashboard to come up; any probe it makes follows at once
ray_cluster.stop_own_ray()
"""
METADATA_SERVICES = ("169.254.", "fd00:ec2::254", "100.100.100.200")


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace is not installed (.ci/run installs it)"
)
def test_the_sweeps_own_ray_asks_no_cloud_metadata_service(tmp_path):
    trace = tmp_path / "connect.trace"
    env = os.environ | {"PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    command = [
        "strace",
        "-f",
        "-qq",
        "-s",
        "512",
        "-e",
        "trace=connect,execve",
        "-o",
        str(trace),
        sys.executable,
        "-c",
        START_AND_STOP_RAY,
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = trace.read_text().splitlines()
    started_api_server = any(
        "execve(" in line and "dashboard/dashboard.py" in line for line in lines
    )
    assert started_api_server  # the process that would ask, silenced by ray_process_site
    connects = [line for line in lines if "connect(" in line]
    assert any("AF_INET" in line for line in connects)  # the trace saw Ray's own connections
    assert [
        line for line in connects if any(address in line for address in METADATA_SERVICES)
    ] == []
