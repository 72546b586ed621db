"""One driver per sweep: the lock in the experiment folder, held, refused, taken over when stale."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from sweeps.driver.record.driver_lock import (
    LOCK_FILE,
    DriverLockError,
    hold_sweep,
    process_started,
)
from tests.conftest import REPO


def test_a_second_driver_is_refused_with_the_holders_name_and_the_lock_goes_with_the_first(
    tmp_path,
):
    with hold_sweep(str(tmp_path), command="sweep resume"):
        record = json.loads((tmp_path / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(DriverLockError) as refused:
            with hold_sweep(str(tmp_path), command="sweep sync"):
                pass
        assert f"pid {os.getpid()} on {socket.gethostname()}, sweep resume since" in str(
            refused.value
        )
        assert str(tmp_path / LOCK_FILE) in str(refused.value)
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_started(gone.pid)
    gone.wait()
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"pid": gone.pid, "host": socket.gethostname(), "process_started": started})
    )
    with hold_sweep(str(tmp_path), command="sweep resume"):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path):
    # Our own pid, but recorded with another start time: the process that took the lock is gone.
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "process_started": 1.0})
    )
    with hold_sweep(str(tmp_path), command="sweep resume"):
        pass


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    (tmp_path / LOCK_FILE).write_text(
        json.dumps({"pid": 1, "host": "another-host", "process_started": 1.0, "since": "then"})
    )
    with pytest.raises(DriverLockError, match="pid 1 on another-host"):
        with hold_sweep(str(tmp_path), command="sweep resume"):
            pass


def test_an_unreadable_lock_is_being_written_unless_it_is_old(tmp_path):
    torn = tmp_path / LOCK_FILE
    torn.write_text('{"pid": 12')
    with pytest.raises(DriverLockError, match="right now"):
        with hold_sweep(str(tmp_path), command="sweep resume"):
            pass
    old = time.time() - 60
    os.utime(torn, (old, old))  # torn by a driver killed mid-write a minute ago
    with hold_sweep(str(tmp_path), command="sweep resume"):
        pass


TAKE_THE_LOCK = """
import sys, time
from pathlib import Path
from sweeps.driver.record.driver_lock import DriverLockError, hold_sweep
folder, go, release = (Path(arg) for arg in sys.argv[1:4])
(go.parent / f"ready-{sys.argv[4]}").touch()
while not go.exists():
    time.sleep(0.001)
try:
    with hold_sweep(str(folder), command="sweep resume"):
        while not release.exists():  # held until every other process has tried and given up
            time.sleep(0.01)
except DriverLockError:
    sys.exit(2)
"""
RACERS = 4


def test_of_several_processes_taking_the_lock_at_once_exactly_one_holds_it(tmp_path):
    folder, signals = tmp_path / "sweep", tmp_path / "signals"
    folder.mkdir()
    signals.mkdir()
    go, release = signals / "go", signals / "release"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", TAKE_THE_LOCK, str(folder), str(go), str(release), str(index)],
            cwd=REPO,
        )
        for index in range(RACERS)
    ]
    deadline = time.monotonic() + 60
    while len(list(signals.glob("ready-*"))) < RACERS:  # every racer imported and waiting
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.01)
    go.touch()
    while sum(process.poll() is not None for process in processes) < RACERS - 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    release.touch()
    codes = sorted(process.wait(timeout=60) for process in processes)
    assert codes == [0] + [2] * (RACERS - 1)
