"""The MLflow writes a sweep has not sent yet, kept on disk beside its journal until the
store takes them: `sweep resume` and `sweep sync` send what a dead driver left there."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sweeps.driver.cluster import storage

SPOOL_FILE = "mlflow-spool.jsonl"
SPOOL_SENT_FILE = "mlflow-spool.sent"  # how many of the spool's lines are sent
SPOOL_FILES = "mlflow-spool"  # artifacts waiting to be sent


class Spool:
    """MLflow writes not yet sent, oldest first, kept on disk until they are.

    On a filesystem (local, NFS, a Kubernetes volume) it is a write-ahead log: the
    writer appends each write before sending it, and a counter file says how many are
    sent, so a driver killed with writes still queued loses none (`sweep resume` and
    `sweep sync` send them). Object stores cannot append: there the spool holds only
    what an outage kept back, rewritten whole.
    """

    def __init__(self, experiment_path: str) -> None:
        self.experiment_path = experiment_path
        self.path = storage.join(experiment_path, SPOOL_FILE)
        self._sent_path = storage.join(experiment_path, SPOOL_SENT_FILE)
        self.appendable = not storage.is_uri(experiment_path)
        # A driver killed mid-append leaves a torn last line: a write nobody was told was kept.
        lines = [
            line
            for line in (storage.read_text(self.path) or "").splitlines(keepends=True)
            if line.endswith("\n")
        ]
        self._lines = len(lines)
        self._sent = min(int((storage.read_text(self._sent_path) or "0").strip() or 0), self._lines)
        self.operations: list[dict[str, Any]] = [json.loads(line) for line in lines[self._sent :]]

    def __len__(self) -> int:
        return len(self.operations)

    def append(self, operations: list[dict[str, Any]]) -> None:
        self.operations += operations
        if not self.appendable:
            self._rewrite()
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as log:
            log.write("".join(json.dumps(operation) + "\n" for operation in operations))
        self._lines += len(operations)

    def pop_sent(self, count: int) -> None:
        """The oldest `count` writes are sent: forget them and the artifacts they carried."""
        for operation in self.operations[:count]:
            if "file" in operation:
                storage.remove_folder_of(operation["file"])  # one folder per file (keep_file)
        del self.operations[:count]
        if not self.appendable:
            self._rewrite()
        elif not self.operations:
            # All sent: start the log afresh rather than let it grow for the whole sweep.
            storage.write_text(self.path, "")
            storage.write_text(self._sent_path, "0")
            self._lines = self._sent = 0
        else:
            self._sent += count
            storage.write_text(self._sent_path, str(self._sent))

    def keep_file(self, name: str, content: bytes) -> str:
        """Store an artifact's bytes with the spool; returns the path to send it from later."""
        # A unique folder: a count of waiting writes repeats once some are sent, and would
        # overwrite.
        path = storage.join(self.experiment_path, SPOOL_FILES, uuid.uuid4().hex, name)
        storage.write_bytes(path, content)
        return path

    def _rewrite(self) -> None:
        storage.write_text(
            self.path, "".join(json.dumps(operation) + "\n" for operation in self.operations)
        )

    def read_file(self, path: str) -> bytes:
        """The bytes of an artifact keep_file stored."""
        return storage.read_bytes(path)
