"""The sweep's own record, kept with Ray Tune's experiment folder.

Tune restores its trials after a crash, but not the MLflow runs they were
logging to. `sweep.json` says which run each trial writes to, with the sweep's
parent run, tracking URI and sweep file; it is written the moment a run is
created, so a resumed sweep continues in the same runs instead of opening new
ones. `mlflow-spool.jsonl` holds, in order, the MLflow writes the tracking
store could not take, until the store answers again or `sweep sync` sends them.

Both live under the experiment path, a local folder or a URI (s3://, gs://):
they go wherever Tune's checkpoints go.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

import pyarrow.fs

JOURNAL_FILE = "sweep.json"
SPOOL_FILE = "mlflow-spool.jsonl"
SPOOL_FILES = "mlflow-spool"  # artifacts waiting to be sent


class JournalError(Exception):
    """An experiment path that holds no sweep to resume or sync."""


def _filesystem(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    if "://" in path:
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), str(path)


def _join(base: str, *parts: str) -> str:
    # Not PurePosixPath: it would fold a URI's "s3://" into "s3:/".
    return "/".join([base.rstrip("/"), *parts])


def _read_text(path: str) -> str | None:
    fs, fs_path = _filesystem(path)
    try:
        with fs.open_input_stream(fs_path) as stream:
            return stream.read().decode("utf-8")
    except FileNotFoundError:
        return None


def read_bytes(path: str) -> bytes:
    fs, fs_path = _filesystem(path)
    with fs.open_input_stream(fs_path) as stream:
        return stream.read()


def _write_text(path: str, text: str) -> None:
    """Write whole or not at all: a driver killed mid-write leaves the previous version."""
    fs, fs_path = _filesystem(path)
    fs.create_dir(str(PurePosixPath(fs_path).parent), recursive=True)
    partial = f"{fs_path}.partial"
    with fs.open_output_stream(partial) as stream:
        stream.write(text.encode("utf-8"))
    fs.move(partial, fs_path)


@dataclass
class SweepJournal:
    experiment_path: str
    sweep_name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    sweep_yaml: str
    trial_runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial id -> {"run_id", "config"}
    alerts: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    updated: float = 0.0

    @classmethod
    def load(cls, experiment_path: str) -> SweepJournal:
        text = _read_text(_join(experiment_path, JOURNAL_FILE))
        if text is None:
            raise JournalError(f"{experiment_path}: no {JOURNAL_FILE} here; give the sweep's folder under storage.path (printed by `sweep run`)")
        try:
            return cls(**{**json.loads(text), "experiment_path": experiment_path})
        except (ValueError, TypeError) as error:
            raise JournalError(f"{experiment_path}: {JOURNAL_FILE} is unreadable: {error}") from None

    def save(self) -> None:
        self.updated = time.time()
        state = asdict(self)
        del state["experiment_path"]  # the folder may move (a restored volume, a renamed bucket)
        _write_text(_join(self.experiment_path, JOURNAL_FILE), json.dumps(state, indent=1, default=str))

    def run_of(self, trial_id: str) -> str | None:
        entry = self.trial_runs.get(trial_id)
        return entry["run_id"] if entry else None

    def record_run(self, trial_id: str, run_id: str, config: dict[str, Any]) -> None:
        self.trial_runs[trial_id] = {"run_id": run_id, "config": _comparable(config)}
        self.save()

    def adopt_run(self, trial_id: str, config: dict[str, Any], live_trial_ids: set[str]) -> str | None:
        """The run of a trial Tune lost track of (it started after Tune's last snapshot
        and Tune drew it again under a new id): the same config, no live trial of its own."""
        wanted = _comparable(config)
        for old_id, entry in list(self.trial_runs.items()):
            if old_id not in live_trial_ids and entry["config"] == wanted:
                self.trial_runs[trial_id] = self.trial_runs.pop(old_id)
                self.save()
                return entry["run_id"]
        return None

    def replace_run_id(self, old_run_id: str, new_run_id: str) -> None:
        for entry in self.trial_runs.values():
            if entry["run_id"] == old_run_id:
                entry["run_id"] = new_run_id
        for alert in self.alerts:
            if alert.get("run_id") == old_run_id:
                alert["run_id"] = new_run_id
        self.save()


def _comparable(config: dict[str, Any]) -> Any:
    return json.loads(json.dumps(config, sort_keys=True, default=str))


class Spool:
    """MLflow writes waiting for the tracking store, oldest first, kept on disk."""

    def __init__(self, experiment_path: str) -> None:
        self.experiment_path = experiment_path
        self.path = _join(experiment_path, SPOOL_FILE)
        text = _read_text(self.path)
        self.operations: list[dict[str, Any]] = [json.loads(line) for line in (text or "").splitlines() if line.strip()]

    def __len__(self) -> int:
        return len(self.operations)

    def append(self, operation: dict[str, Any]) -> None:
        self.operations.append(operation)
        self._save()

    def keep_file(self, name: str, content: bytes) -> str:
        """Store an artifact's bytes with the spool; returns the path to send it from later."""
        # A unique folder: a count of waiting writes repeats once some are sent, and would overwrite.
        path = _join(self.experiment_path, SPOOL_FILES, uuid.uuid4().hex, name)
        fs, fs_path = _filesystem(path)
        fs.create_dir(str(PurePosixPath(fs_path).parent), recursive=True)
        with fs.open_output_stream(fs_path) as stream:
            stream.write(content)
        return path

    def pop_sent(self, count: int) -> None:
        del self.operations[:count]
        self._save()

    def _save(self) -> None:
        # Rewritten whole: object stores cannot append, and an outage's backlog is small.
        _write_text(self.path, "".join(json.dumps(operation) + "\n" for operation in self.operations))


def find_resumable(storage_path: str, sweep_name: str) -> str | None:
    """The newest unfinished experiment of this sweep under `storage_path`, if any."""
    fs, fs_path = _filesystem(storage_path)
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(fs_path, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return None
    candidates = []
    for entry in entries:
        if entry.type != pyarrow.fs.FileType.Directory:
            continue
        experiment_path = _join(storage_path, entry.base_name)
        try:
            journal = SweepJournal.load(experiment_path)
        except JournalError:
            continue
        if journal.sweep_name == sweep_name and not journal.finished:
            candidates.append((journal.updated, experiment_path))
    return max(candidates)[1] if candidates else None
