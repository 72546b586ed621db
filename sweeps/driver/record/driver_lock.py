"""One driver per sweep: `run`, `resume` and `sync` hold `sweep.lock` in the experiment folder.

Two drivers of one experiment would both create MLflow runs for the same trials and
log every epoch twice. The lock names its holder (pid, host, when it started); a lock
whose process is gone on this host is taken over. On a filesystem that several hosts
mount, the lock is created atomically (O_EXCL) like on a local disk, but a lock held
from another host is never taken over: this host cannot tell whether that process
lives. On an object store (s3://, gs://) it is best effort: written, then read back.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sweeps.driver.cluster import storage
from sweeps.errors import SweepError

LOCK_FILE = "sweep.lock"


class DriverLockError(SweepError):
    """Another driver holds the sweep."""


def process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since boot, from /proc), or None if it is gone.
    Compared with the lock's record, it tells a living holder from a reused pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":  # a zombie has exited
        return None
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def this_holder(command: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_started": process_started(os.getpid()),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": command,
    }


@contextlib.contextmanager
def hold_sweep(experiment_path: str, *, command: str) -> Iterator[None]:
    """Hold the experiment's lock for the duration; DriverLockError names the holder if another
    driver has it."""
    path = storage.join(experiment_path, LOCK_FILE)
    holder = this_holder(command)
    if storage.is_uri(experiment_path):
        _take_on_object_store(path, holder)
    else:
        _take_on_filesystem(Path(path), holder)
    try:
        yield
    finally:
        _release(path, holder)


def _take_on_filesystem(path: Path, holder: dict[str, Any]) -> None:
    for _ in range(3):  # a stale lock taken over by another process at the same moment: look again
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except (FileNotFoundError, NotADirectoryError):
            raise DriverLockError(f"{path.parent}: no such experiment folder") from None
        except FileExistsError:
            current = _read(str(path))
            if current is not None and not _is_stale(current):
                raise DriverLockError(_held_message(path, current)) from None
            _set_aside(path)
            continue
        with os.fdopen(descriptor, "w") as file:
            json.dump(holder, file)
        return
    raise DriverLockError(f"{path}: another driver keeps taking this sweep's lock; try again")


def _set_aside(path: Path) -> None:
    """Move a stale lock out of the way; only one of several processes doing so succeeds."""
    with contextlib.suppress(FileNotFoundError):
        os.rename(path, path.with_name(f"{LOCK_FILE}.stale-{uuid.uuid4().hex[:8]}"))
        for stale in path.parent.glob(f"{LOCK_FILE}.stale-*"):
            stale.unlink(missing_ok=True)


def _take_on_object_store(path: str, holder: dict[str, Any]) -> None:
    current = _read(path)
    if current is not None and not _is_stale(current):
        raise DriverLockError(_held_message(path, current))
    storage.write_text(path, json.dumps(holder))
    if _read(path) != holder:
        raise DriverLockError(
            f"{path}: another driver took this sweep's lock at the same moment; try again"
        )


# an unreadable lock this old was torn by a killed driver, not being written now
TORN_AFTER_S = 10.0


def _read(path: str) -> dict[str, Any] | None:
    text = storage.read_text(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:  # being written this moment, or torn by a driver killed mid-write
        return {"torn": True, "path": path}


def _is_stale(current: dict[str, Any]) -> bool:
    """The holder's process is gone (or the pid now belongs to another process), on this host."""
    if current.get("torn"):
        with contextlib.suppress(OSError):
            return time.time() - os.stat(current["path"]).st_mtime > TORN_AFTER_S
        return False
    if current.get("host") != socket.gethostname():
        return False
    pid = current.get("pid")
    return not isinstance(pid, int) or process_started(pid) != current.get("process_started")


def _held_message(path: Any, current: dict[str, Any]) -> str:
    if current.get("torn"):
        return (
            f"{path}: another driver is taking this sweep's lock right now; try again in a moment"
        )
    where = (
        f"pid {current.get('pid')} on {current.get('host')}, "
        f"{current.get('command', 'a driver')} since {current.get('since')}"
    )
    return f"{path}: this sweep is being driven by {where}; if that process is gone, delete {path}"


def _release(path: str, holder: dict[str, Any]) -> None:
    if _read(path) == holder:
        fs, fs_path = storage.filesystem(path)
        with contextlib.suppress(FileNotFoundError, OSError):
            fs.delete_file(fs_path)
