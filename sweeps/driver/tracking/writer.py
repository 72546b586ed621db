"""The sweep's MLflow writes: queued, sent in order by a background thread, retried, and
kept in the spool on disk until the store takes them."""

from __future__ import annotations

import atexit
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from sweeps.driver.tracking.batching import MetricPoint, merge_log_batches
from sweeps.driver.tracking.operations import create_run, created_run, is_outage, send_to_run
from sweeps.driver.tracking.store import quiet_mlflow
from sweeps.errors import first_line

RETRY_DELAYS_S = (0.5, 1.0, 2.0)
SEND_EVERY_S = 1.0  # how far MLflow may lag behind the sweep, to merge writes into few calls
REPROBE_EVERY_S = 2.0  # tried by the sender thread, so a probe costs training nothing


class WriteLog(Protocol):
    """Where writes wait on disk until the store takes them (the sweep's spool, record/spool.py)."""

    path: str
    appendable: bool  # False on object stores: there the log is rewritten whole
    operations: list[dict[str, Any]]  # not yet sent, oldest first

    def append(self, operations: list[dict[str, Any]]) -> None: ...
    def pop_sent(self, count: int) -> None: ...
    def keep_file(self, name: str, content: bytes) -> str: ...
    def read_file(self, path: str) -> bytes: ...


class RunIds(Protocol):
    """Which run each trial writes to (the sweep's journal, record/journal.py): the writer reads
    runs an earlier driver created and records the real id of each run it creates."""

    def run_of(self, trial_id: str) -> str | None: ...
    def replace_run_id(self, old_run_id: str, new_run_id: str) -> None: ...


@dataclass
class QueuedWrite:
    """One MLflow write on its way to the store."""

    operation: dict[str, Any]
    content: bytes | None = None  # an artifact's bytes, while they are at hand
    kept: bool = False  # in the spool on disk
    sent: bool = False
    # an earlier try may have reached the store: a run must not be created twice
    maybe_sent: bool = False


class MlflowWriter:
    """The sweep's MLflow writes: queued by the caller, sent in order by a background thread.

    Tune's event loop only queues a write and goes on, so no trial waits on MLflow
    (a trial's report blocks until the loop has handled it). Each write is first
    appended to the spool on disk, so a killed driver loses none. The sender merges
    the writes waiting for a run into one log_batch call: a store pays far more per
    call (a sqlite transaction, an HTTP request) than per metric. A write that fails
    because the store does not answer is retried with backoff; if the store stays
    away, the writes wait in the spool and training carries on, and the sender tries
    again every REPROBE_EVERY_S. A run is known by a `pending:` id until the sender
    has created it; the journal gets its real id then. Where the spool cannot be
    appended to (an object store), each write waits until it is sent or spooled.
    `close()` sends what is queued; an exit does too.
    """

    def __init__(
        self,
        tracking_uri: str,
        spool: WriteLog,
        journal: RunIds | None = None,
        *,
        patience_s: float,
        warn: Callable[[str], None] = print,
    ) -> None:
        quiet_mlflow()
        self.patience_s = patience_s  # at close, how long to try a store that does not answer
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.spool = spool
        self.journal = journal
        self.warn = warn
        self.offline = False
        self._next_probe = 0.0
        self._pending_ids: dict[str, str] = {}
        # What an earlier driver left unsent goes out first.
        self._unsent: deque[QueuedWrite] = deque(
            QueuedWrite(operation, kept=True, maybe_sent=True) for operation in spool.operations
        )
        self._changed = threading.Condition()
        self._closing = False
        self._give_up_at = 0.0
        self._gave_up = False
        self._sender: threading.Thread | None = None

    def create_run(
        self,
        key: str,
        experiment_id: str,
        *,
        parent_run_id: str,
        run_name: str,
        tags: Mapping[str, str],
    ) -> str:
        """Queue the creation of a run nested under `parent_run_id`; returns the `pending:` id later
        writes to it use."""
        tags = {MLFLOW_PARENT_RUN_ID: parent_run_id, MLFLOW_RUN_NAME: run_name, **tags}
        self._submit({"op": "create_run", "key": key, "experiment_id": experiment_id, "tags": tags})
        return f"pending:{key}"

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[MetricPoint] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._submit(
            {
                "op": "log_batch",
                "run_id": run_id,
                "metrics": [list(point) for point in metrics],
                "params": [[key, value] for key, value in (params or {}).items()],
                "tags": [[key, value] for key, value in (tags or {}).items()],
            }
        )

    def last_step(self, run_id: str, key: str) -> int:
        """The highest step of metric `key` the store holds for a run (0 if none), asked on the
        caller's thread."""
        return max(
            (metric.step for metric in self.client.get_metric_history(run_id, key)), default=0
        )

    def set_terminated(self, run_id: str, status: str) -> None:
        self._submit({"op": "set_terminated", "run_id": run_id, "status": status})

    def reopen_run(self, run_id: str) -> None:
        """The run is RUNNING again (a trial of a resumed sweep goes on in it)."""
        self._submit({"op": "reopen_run", "run_id": run_id})

    def log_bytes(self, run_id: str, name: str, content: bytes) -> None:
        """An artifact at the run's root; its bytes wait with the spool until sent."""
        self._submit({"op": "log_bytes", "run_id": run_id, "name": name}, content=content)

    def run_id(self, run_id: str) -> str:
        """The real id of a run known by its `pending:` id, once it is created."""
        if run_id in self._pending_ids:
            return self._pending_ids[run_id]
        if run_id.startswith("pending:") and self.journal is not None:
            # created by an earlier driver
            known = self.journal.run_of(run_id.removeprefix("pending:"))
            if known is not None and not known.startswith("pending:"):
                return known
        return run_id

    def created_run_id(self, run_id: str, *, deadline: float) -> str | None:
        """The real id of a run, waiting until `deadline` (time.monotonic()) for the sender to
        create it; None if it has not, or never will (the writer closed with the store away)."""
        with self._changed:
            while (created := self.run_id(run_id)).startswith("pending:"):
                finished = self._closing and (self._sender is None or not self._sender.is_alive())
                if finished or time.monotonic() >= deadline:
                    return None
                # Timed: the sender thread ends without a word once it has given up.
                self._changed.wait(min(deadline - time.monotonic(), SEND_EVERY_S))
        return created

    def close(self, *, patience_s: float | None = None) -> int:
        """Send every queued write, trying a store that does not answer for up to `patience_s`
        (the writer's own unless given; then leaving the rest in the spool), and stop the
        sender. Returns how many writes still wait in the spool."""
        if patience_s is None:
            patience_s = self.patience_s
        with self._changed:
            self._closing = True
            self._give_up_at = time.monotonic() + patience_s
            waiting = sum(not write.sent for write in self._unsent)
            if self.offline and waiting and patience_s > 0:
                self.warn(
                    f"MLflow at {self.tracking_uri} does not answer: trying its {waiting} "
                    f"waiting writes for up to {patience_s:.0f} s before exiting"
                )
            self._changed.notify_all()
            sender = self._sender
        if sender is None:
            self._send_queued()  # only what an earlier driver left: send it on this thread
        else:
            sender.join()
            atexit.unregister(self.close)
        return sum(not write.sent for write in self._unsent)

    def _submit(self, operation: dict[str, Any], content: bytes | None = None) -> None:
        write = QueuedWrite(operation, content)
        with self._changed:
            if self._closing:
                raise RuntimeError("this MLflow writer is closed")
            if self.spool.appendable or self.offline:
                self._spool([write])
            self._unsent.append(write)
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_queued, name="mlflow-writer", daemon=True
                )
                self._sender.start()
                # A daemon thread dies with the interpreter: at exit, send what is queued first.
                atexit.register(self.close)
            self._changed.notify_all()
            while not (write.kept or write.sent):
                self._changed.wait()  # an object store: nothing on disk holds it yet

    def _spool(self, writes: list[QueuedWrite]) -> None:
        """Put writes in the spool on disk, artifacts' bytes in files beside it."""
        for write in writes:
            if write.content is not None:
                write.operation = write.operation | {
                    "file": self.spool.keep_file(write.operation["name"], write.content)
                }
            write.kept = True
        self.spool.append([write.operation for write in writes])

    def _send_queued(self) -> None:
        next_round = 0.0
        while True:
            with self._changed:
                while True:
                    waiting = [write for write in self._unsent if not write.sent]
                    if self._closing and (not waiting or self._gave_up):
                        return
                    if self.offline:  # the next probe, or the last one before giving up at close
                        due = (
                            min(self._next_probe, self._give_up_at)
                            if self._closing
                            else self._next_probe
                        )
                    else:  # at close, at once: nothing more will merge
                        due = 0.0 if self._closing else next_round
                    if waiting and time.monotonic() >= due:
                        break
                    self._changed.wait(
                        timeout=max(0.0, due - time.monotonic()) if waiting else None
                    )
            # Rounds at most every SEND_EVERY_S: writes arriving meanwhile merge into the next one.
            next_round = time.monotonic() + SEND_EVERY_S
            was_offline = self.offline
            sent = self._send_round(waiting)
            if sent and was_offline and not self.offline:
                self.warn(
                    f"MLflow at {self.tracking_uri} answers again; the {sent} writes kept "
                    "during the outage are sent"
                )
            if self.offline and self._closing and time.monotonic() >= self._give_up_at:
                self._gave_up = True

    def _send_round(self, waiting: list[QueuedWrite]) -> int:
        """Send the waiting writes, merged, until the store stops answering; returns how many were
        sent."""
        calls = merge_log_batches([write.operation for write in waiting], items=waiting)
        # A write too big for one call is sent once its last part is.
        parts_left = Counter(id(write) for _, writes in calls for write in writes)
        sent = 0
        for operation, writes in calls:
            try:
                if not self._send(operation, writes):
                    return sent
            except (
                Exception
            ) as error:  # the store refused this write: it never will take it, the others still go
                self.warn(
                    f"MLflow at {self.tracking_uri} refused a write ({operation['op']}): "
                    f"{first_line(error)}"
                )
            with self._changed:
                for write in writes:
                    parts_left[id(write)] -= 1
                    if not parts_left[id(write)]:
                        write.sent = True
                        sent += 1
                self._retire_sent()
                self._changed.notify_all()
        return sent

    def _send(self, operation: dict[str, Any], writes: list[QueuedWrite]) -> bool:
        """True once the store took the write; False when it does not answer (the writer is offline
        then)."""
        for delay in (*(() if self.offline else RETRY_DELAYS_S), None):
            try:
                self._send_operation(operation, writes)
                self.offline = False
                return True
            except Exception as error:
                if not is_outage(error):
                    raise
                for write in writes:
                    write.maybe_sent = True
                # Closing, the retries too end when the patience does.
                past_patience = self._closing and time.monotonic() + (delay or 0) > self._give_up_at
                if delay is None or past_patience:
                    self._go_offline(error)
                    return False
                time.sleep(delay)
        return False

    def _go_offline(self, error: Exception) -> None:
        if not self.offline:
            self.warn(
                f"MLflow at {self.tracking_uri} does not answer ({first_line(error)}); training "
                f"goes on and its logs wait in {self.spool.path}"
            )
        self.offline = True
        self._next_probe = time.monotonic() + REPROBE_EVERY_S
        with self._changed:
            self._spool([write for write in self._unsent if not (write.kept or write.sent)])
            self._changed.notify_all()

    def _retire_sent(self) -> None:
        """Forget the oldest writes once sent, in order, so the spool on disk shrinks with them."""
        kept = 0
        while self._unsent and self._unsent[0].sent:
            kept += self._unsent.popleft().kept
        if kept:
            self.spool.pop_sent(kept)

    def _send_operation(self, operation: dict[str, Any], writes: list[QueuedWrite]) -> None:
        if operation["op"] == "create_run":
            pending = f"pending:{operation['key']}"
            # An earlier try may have reached the store before the driver died: no second run.
            earlier = any(write.maybe_sent for write in writes)
            run_id = (earlier and created_run(self.client, operation)) or create_run(
                self.client, operation
            )
            self._pending_ids[pending] = run_id
            if self.journal is not None:
                self.journal.replace_run_id(pending, run_id)
            return
        content = None
        if operation["op"] == "log_bytes":
            content = writes[0].content
            if content is None:
                content = self.spool.read_file(operation["file"])
        send_to_run(self.client, operation, run_id=self.run_id, content=content)
