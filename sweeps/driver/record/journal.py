"""The sweep's own record, kept with Ray Tune's experiment folder.

Tune restores its trials after a crash, but not the MLflow runs they were
logging to. `sweep.json` says which run each trial writes to, with the sweep's
parent run, tracking URI and sweep file; it is written the moment a run is
created, so a resumed sweep continues in the same runs instead of opening new
ones. The MLflow writes not yet sent wait beside it in the spool (record/spool.py).

It lives under the experiment path, a local folder or a URI (s3://, gs://):
they go wherever Tune's checkpoints go.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sweeps.credentials import (
    CREDENTIALS_HINT,
    has_credentials,
    storable,
    with_environment_credentials,
)
from sweeps.driver.cluster import storage
from sweeps.errors import SweepError

JOURNAL_FILE = "sweep.json"


class JournalError(SweepError):
    """An experiment path that holds no sweep to resume or sync."""


@dataclass
class SweepJournal:
    experiment_path: str
    sweep_name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    sweep_yaml: str
    # trial id -> {"run_id", "config", "status"}
    trial_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    updated: float = 0.0

    def __post_init__(self) -> None:
        # Tune's event loop records runs and alerts while the MLflow sender swaps pending
        # run ids for real ones; not a field, so it is neither saved nor compared.
        self._lock = threading.RLock()

    @classmethod
    def load(cls, experiment_path: str) -> SweepJournal:
        text = storage.read_text(storage.join(experiment_path, JOURNAL_FILE))
        if text is None:
            raise JournalError(
                f"{experiment_path}: no {JOURNAL_FILE} here; give the sweep's folder under "
                "storage.path (printed by `sweep run`)"
            )
        try:
            journal = cls(**{**json.loads(text), "experiment_path": experiment_path})
        except (ValueError, TypeError) as error:
            raise JournalError(
                f"{experiment_path}: {JOURNAL_FILE} is unreadable: {error}"
            ) from None
        if has_credentials(journal.tracking_uri):  # hand-edited, or written by an older sweep
            raise JournalError(
                f"{experiment_path}/{JOURNAL_FILE}: tracking_uri: {CREDENTIALS_HINT}"
            )
        journal.tracking_uri = with_environment_credentials(journal.tracking_uri)
        return journal

    def save(self) -> None:
        with self._lock:
            self.updated = time.time()
            state = asdict(self)
            del state[
                "experiment_path"
            ]  # the folder may move (a restored volume, a renamed bucket)
            # credentials stay in the environment
            state["tracking_uri"] = storable(self.tracking_uri)
            storage.write_text(
                storage.join(self.experiment_path, JOURNAL_FILE),
                json.dumps(state, indent=1, default=str),
            )

    def run_of(self, trial_id: str) -> str | None:
        entry = self.trial_runs.get(trial_id)
        return entry["run_id"] if entry else None

    def record_run(self, trial_id: str, run_id: str, config: dict[str, Any]) -> None:
        with self._lock:
            self.trial_runs[trial_id] = {
                "run_id": run_id,
                "config": _comparable(config),
                "status": "running",
            }
            self.save()

    def record_status(self, trial_id: str, status: str) -> None:
        """How a trial ended (or `interrupted`), as its run's sweep.status says."""
        with self._lock:
            if trial_id in self.trial_runs:
                self.trial_runs[trial_id]["status"] = status
                self.save()

    def add_alerts(self, alerts: list[dict[str, Any]]) -> None:
        with self._lock:
            self.alerts.extend(alerts)
            self.save()

    def adopt_run(
        self, trial_id: str, config: dict[str, Any], live_trial_ids: set[str]
    ) -> str | None:
        """The run of a trial Tune lost track of (it started after Tune's last snapshot
        and Tune drew it again under a new id): the same config, no live trial of its own."""
        wanted = _comparable(config)
        with self._lock:
            for old_id, entry in list(self.trial_runs.items()):
                if old_id not in live_trial_ids and entry["config"] == wanted:
                    self.trial_runs[trial_id] = self.trial_runs.pop(old_id)
                    self.save()
                    return entry["run_id"]
        return None

    def replace_run_id(self, old_run_id: str, new_run_id: str) -> None:
        with self._lock:
            for entry in self.trial_runs.values():
                if entry["run_id"] == old_run_id:
                    entry["run_id"] = new_run_id
            for alert in self.alerts:
                if alert.get("run_id") == old_run_id:
                    alert["run_id"] = new_run_id
            self.save()


def _comparable(config: dict[str, Any]) -> Any:
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def find_resumable(storage_path: str, sweep_name: str) -> str | None:
    """The newest unfinished experiment of this sweep under `storage_path`, if any."""
    candidates = []
    for experiment_path in storage.subfolders(storage_path):
        try:
            journal = SweepJournal.load(experiment_path)
        except JournalError:
            continue
        if journal.sweep_name == sweep_name and not journal.finished:
            candidates.append((journal.updated, experiment_path))
    return max(candidates)[1] if candidates else None
