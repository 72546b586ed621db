"""Every MLflow call sweep makes: the sweep's parent run and one child run per trial.

Only the driver talks to MLflow. Trials report to Tune, and the callback below
turns Tune's events into runs, so workers need no tracking credentials and a
sqlite store never sees writers from several processes.
"""
from __future__ import annotations

import atexit
import json
import logging
import math
import os
import re
import statistics
import tempfile
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from ray import tune

from sweeps.alerts import WebhookSender, alert_summary
from sweeps.journal import Spool, SweepJournal, read_bytes
from sweeps.trial_status import SUCCEEDED, trial_status

# MLflow's log_batch limits per call.
MAX_ITEMS_PER_BATCH = 1000  # metrics, params and tags together
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100

TRACKED_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


def resolve_tracking_uri(configured: str | None) -> str:
    """The sweep file's URI, else $MLFLOW_TRACKING_URI, else MLflow's own default."""
    if configured:
        return configured
    import mlflow

    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.get_tracking_uri()


def absolute_uri(tracking_uri: str) -> str:
    """A relative sqlite path made absolute, so `sweep resume` finds the same store from any folder."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and not tracking_uri[len(prefix):].startswith("/"):
        return prefix + os.path.abspath(tracking_uri[len(prefix):])
    return tracking_uri


def quiet_mlflow() -> None:
    """MLflow's defaults suit a notebook, not a sweep: it retries an unreachable server
    for minutes (MlflowWriter retries and spools instead), prints a URL for every
    finished run, and announces the tables it creates in a new sqlite store on a
    person's first sweep. The user's own settings win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    database_setup = logging.getLogger("mlflow.store.db.utils")
    if database_setup.level == logging.NOTSET:
        database_setup.setLevel(logging.WARNING)


def probe(tracking_uri: str) -> None:
    """Raise if the store does not answer; a read, so a failed probe leaves nothing behind."""
    quiet_mlflow()
    MlflowClient(tracking_uri).search_experiments(max_results=1)


def reopen_sweep_run(tracking_uri: str, run_id: str) -> None:
    """A resumed sweep's parent run is running again (it was left RUNNING or KILLED)."""
    MlflowClient(tracking_uri).update_run(run_id, status="RUNNING")


def open_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created if missing (also checks the store answers)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(name)


def start_sweep_run(
    client: MlflowClient,
    experiment_id: str,
    *,
    run_name: str,
    sweep_yaml: str,
    fixed_settings: dict[str, Any],
    refines: str | None = None,
) -> str:
    """Create the sweep's parent run with its settings and sweep file; returns its id."""
    tags = {"sweep.role": "parent"}
    if refines:
        tags["sweep.refined_from"] = refines
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    run_id = run.info.run_id
    _log_params(client, run_id, fixed_settings)
    client.log_text(run_id, sweep_yaml, "search.yaml")
    return run_id


def finish_sweep_run(
    writer: MlflowWriter,
    run_id: str,
    *,
    metric: str,
    best_value: float | None,
    best_run_id: str | None,
    status_counts: dict[str, int],
    alerts: list[dict[str, Any]],
) -> None:
    now = _now_ms()
    metrics = [Metric(f"trials_{status}", count, now, 0) for status, count in status_counts.items()]
    metrics.append(Metric("alerts_count", len(alerts), now, 0))
    tags = []
    alerting = sorted({alert["trial"] for alert in alerts})
    if alerting:
        tags.append(RunTag("sweep.alerting_trials", _truncate(", ".join(alerting))))
    if best_value is not None:
        metrics.append(Metric(f"best_{metric}", best_value, now, 0))
    if best_run_id is not None:
        tags.append(RunTag("sweep.best_run_id", best_run_id))
    writer.log_batch(run_id, metrics=metrics, tags=tags)
    succeeded = sum(status_counts.get(status, 0) for status in SUCCEEDED)
    writer.set_terminated(run_id, "FINISHED" if succeeded else "FAILED")


def fail_sweep_run(writer: MlflowWriter, run_id: str) -> None:
    """Close the parent run when the sweep itself stopped (an error or Ctrl-C); `sweep resume` reopens it."""
    writer.set_terminated(run_id, "KILLED")


# A store that does not answer (retry, then spool), as against one that refuses a write.
OUTAGE_ERROR_CODES = ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED")
RETRY_DELAYS_S = (0.5, 1.0, 2.0)
PENDING_RUN_ID = re.compile(rb"pending:[\w-]+")
SEND_EVERY_S = 1.0  # how far MLflow may lag behind the sweep, to merge writes into few calls
REPROBE_EVERY_S = 2.0  # tried by the sender thread, so a probe costs training nothing
ALERT_WAITS_FOR_RUN_S = 10.0  # an alert sent while MLflow is away names no run rather than wait for it


def is_outage(error: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code in OUTAGE_ERROR_CODES
    # requests' and sqlalchemy's connection errors, without importing either here.
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"ConnectionError", "Timeout", "TimeoutError", "OperationalError"})


@dataclass
class QueuedWrite:
    """One MLflow write on its way to the store."""

    operation: dict[str, Any]
    content: bytes | None = None  # an artifact's bytes, while they are at hand
    kept: bool = False  # in the spool on disk
    sent: bool = False
    maybe_sent: bool = False  # an earlier try may have reached the store: a run must not be created twice


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

    def __init__(self, tracking_uri: str, spool: Spool, journal: SweepJournal | None = None, *, warn: Callable[[str], None] = print) -> None:
        quiet_mlflow()
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.spool = spool
        self.journal = journal
        self.warn = warn
        self.offline = False
        self._next_probe = 0.0
        self._pending_ids: dict[str, str] = {}
        # What an earlier driver left unsent goes out first.
        self._unsent: deque[QueuedWrite] = deque(QueuedWrite(operation, kept=True, maybe_sent=True) for operation in spool.operations)
        self._changed = threading.Condition()
        self._closing = False
        self._gave_up = False
        self._sender: threading.Thread | None = None

    def create_run(self, key: str, experiment_id: str, tags: dict[str, str]) -> str:
        """Queue the run's creation; returns the `pending:` id later writes to it use."""
        self._submit({"op": "create_run", "key": key, "experiment_id": experiment_id, "tags": tags})
        return f"pending:{key}"

    def log_batch(self, run_id: str, metrics: list[Metric] = (), params: list[Param] = (), tags: list[RunTag] = ()) -> None:
        self._submit({
            "op": "log_batch",
            "run_id": run_id,
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": [[p.key, p.value] for p in params],
            "tags": [[t.key, t.value] for t in tags],
        })

    def set_terminated(self, run_id: str, status: str) -> None:
        self._submit({"op": "set_terminated", "run_id": run_id, "status": status})

    def log_bytes(self, run_id: str, name: str, content: bytes) -> None:
        """An artifact at the run's root; its bytes wait with the spool until sent."""
        self._submit({"op": "log_bytes", "run_id": run_id, "name": name}, content=content)

    def run_id(self, run_id: str) -> str:
        """The real id of a run known by its `pending:` id, once it is created."""
        if run_id in self._pending_ids:
            return self._pending_ids[run_id]
        if run_id.startswith("pending:") and self.journal is not None:
            known = self.journal.run_of(run_id.removeprefix("pending:"))  # created by an earlier driver
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

    def close(self) -> int:
        """Send every queued write (or leave it in the spool where the store does not answer)
        and stop the sender. Returns how many writes still wait in the spool."""
        with self._changed:
            self._closing = True
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
                self._keep([write])
            self._unsent.append(write)
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_queued, name="mlflow-writer", daemon=True)
                self._sender.start()
                # A daemon thread dies with the interpreter: at exit, send what is queued first.
                atexit.register(self.close)
            self._changed.notify_all()
            while not (write.kept or write.sent):
                self._changed.wait()  # an object store: nothing on disk holds it yet

    def _keep(self, writes: list[QueuedWrite]) -> None:
        """Put writes in the spool on disk, artifacts' bytes in files beside it."""
        for write in writes:
            if write.content is not None:
                write.operation = write.operation | {"file": self.spool.keep_file(write.operation["name"], write.content)}
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
                    due = self._next_probe if self.offline else next_round
                    if waiting and (self._closing or time.monotonic() >= due):
                        break
                    self._changed.wait(timeout=max(0.0, due - time.monotonic()) if waiting else None)
            # Rounds at most every SEND_EVERY_S: writes arriving meanwhile merge into the next one.
            next_round = time.monotonic() + SEND_EVERY_S
            was_offline = self.offline
            sent = self._send_round(waiting)
            if sent and was_offline and not self.offline:
                self.warn(f"MLflow at {self.tracking_uri} answers again; the {sent} writes kept during the outage are sent")
            if self.offline and self._closing:
                self._gave_up = True

    def _send_round(self, waiting: list[QueuedWrite]) -> int:
        """Send the waiting writes, merged, until the store stops answering; returns how many were sent."""
        calls = merge_log_batches([write.operation for write in waiting], items=waiting)
        # A write too big for one call is sent once its last part is.
        parts_left = Counter(id(write) for _, writes in calls for write in writes)
        sent = 0
        for operation, writes in calls:
            try:
                if not self._send(operation, writes):
                    return sent
            except Exception as error:  # the store refused this write: it never will take it, the others still go
                self.warn(f"MLflow at {self.tracking_uri} refused a write ({operation['op']}): {_first_line(error)}")
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
        """True once the store took the write; False when it does not answer (the writer is offline then)."""
        for delay in (*(() if self.offline else RETRY_DELAYS_S), None):
            try:
                self._apply(operation, writes)
                self.offline = False
                return True
            except Exception as error:
                if not is_outage(error):
                    raise
                for write in writes:
                    write.maybe_sent = True
                if delay is None:
                    self._go_offline(error)
                    return False
                time.sleep(delay)
        return False

    def _go_offline(self, error: Exception) -> None:
        if not self.offline:
            self.warn(f"MLflow at {self.tracking_uri} does not answer ({_first_line(error)}); training goes on and its logs wait in {self.spool.path}")
        self.offline = True
        self._next_probe = time.monotonic() + REPROBE_EVERY_S
        with self._changed:
            self._keep([write for write in self._unsent if not (write.kept or write.sent)])
            self._changed.notify_all()

    def _retire_sent(self) -> None:
        """Forget the oldest writes once sent, in order, so the spool on disk shrinks with them."""
        kept = 0
        while self._unsent and self._unsent[0].sent:
            kept += self._unsent.popleft().kept
        if kept:
            self.spool.pop_sent(kept)

    def _apply(self, operation: dict[str, Any], writes: list[QueuedWrite]) -> None:
        kind = operation["op"]
        if kind == "create_run":
            pending = f"pending:{operation['key']}"
            earlier = self._created_run(operation) if any(write.maybe_sent for write in writes) else None
            run_id = earlier or self.client.create_run(operation["experiment_id"], tags=operation["tags"]).info.run_id
            self._pending_ids[pending] = run_id
            if self.journal is not None:
                self.journal.replace_run_id(pending, run_id)
            return
        run_id = self.run_id(operation["run_id"])
        if kind == "log_batch":
            self.client.log_batch(
                run_id,
                metrics=[Metric(*item) for item in operation["metrics"]],
                params=[Param(*item) for item in operation["params"]],
                # A tag may name another run by its pending id (the sweep's sweep.best_run_id).
                tags=[RunTag(key, self.run_id(value)) for key, value in operation["tags"]],
            )
        elif kind == "set_terminated":
            self.client.set_terminated(run_id, operation["status"])
        elif kind == "log_bytes":
            content = writes[0].content if writes[0].content is not None else read_bytes(operation["file"])
            if operation["name"].endswith(".json"):
                content = self._with_run_ids(content)
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / operation["name"]
                path.write_bytes(content)
                self.client.log_artifact(run_id, str(path))

    def _with_run_ids(self, content: bytes) -> bytes:
        """A JSON artifact with the pending run ids it names (an alert's run) replaced by the runs made since."""
        return PENDING_RUN_ID.sub(lambda match: self.run_id(match.group().decode()).encode(), content)

    def _created_run(self, operation: dict[str, Any]) -> str | None:
        """The run an earlier try of this create_run made, if it reached the store before the driver died."""
        tags = operation["tags"]
        if "sweep.trial_id" not in tags:
            return None
        filters = [f"tags.`sweep.trial_id` = '{tags['sweep.trial_id']}'"]
        if MLFLOW_PARENT_RUN_ID in tags:
            filters.append(f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{tags[MLFLOW_PARENT_RUN_ID]}'")
        runs = self.client.search_runs([operation["experiment_id"]], filter_string=" and ".join(filters), max_results=1)
        return runs[0].info.run_id if runs else None


def merge_log_batches(operations: list[dict[str, Any]], *, items: list | None = None) -> list[tuple[dict[str, Any], list]]:
    """The writes as calls, each run's consecutive log_batch writes merged within MLflow's
    per-call limits, with the `items` (default: the writes) each call covers. A run's
    writes keep their order; runs are independent of each other."""
    items = operations if items is None else items
    calls: list[tuple[dict[str, Any], list]] = []
    open_batch: dict[str, tuple[dict[str, Any], list]] = {}  # run id -> the merged call still taking writes
    for operation, item in zip(operations, items):
        run_id = operation.get("run_id")
        if operation["op"] != "log_batch":
            open_batch.pop(run_id, None)  # later writes to this run come after this one
            calls.append((operation, [item]))
            continue
        for part in _within_limits(operation):
            if run_id not in open_batch or not _fits(open_batch[run_id][0], part):
                open_batch[run_id] = (_empty_batch(run_id), [])
                calls.append(open_batch[run_id])
            batch, covered = open_batch[run_id]
            batch["metrics"] += part["metrics"]
            batch["params"] += part["params"]
            # A tag written twice keeps its later value (one call may not carry a key twice).
            batch["tags"] = [list(tag) for tag in (dict(batch["tags"]) | dict(part["tags"])).items()]
            if not covered or covered[-1] is not item:
                covered.append(item)
    return calls


def _empty_batch(run_id: str) -> dict[str, Any]:
    return {"op": "log_batch", "run_id": run_id, "metrics": [], "params": [], "tags": []}


def _within_limits(operation: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """A log_batch write cut into parts that each fit one call."""
    part = _empty_batch(operation["run_id"])
    for kind in ("params", "tags", "metrics"):
        for item in operation[kind]:
            single = {"metrics": [], "params": [], "tags": [], kind: [item]}
            if not _fits(part, single):
                yield part
                part = _empty_batch(operation["run_id"])
            part[kind].append(item)
    yield part


def _fits(batch: dict[str, Any], operation: dict[str, Any]) -> bool:
    metrics = len(batch["metrics"]) + len(operation["metrics"])
    params = len(batch["params"]) + len(operation["params"])
    tags = len(batch["tags"]) + len(operation["tags"])
    return metrics + params + tags <= MAX_ITEMS_PER_BATCH and params <= MAX_PARAMS_PER_BATCH and tags <= MAX_TAGS_PER_BATCH


class MlflowTrialLogger(tune.Callback):
    """A Tune callback that keeps one MLflow child run per trial under the sweep's parent run.

    Tune pickles it with the experiment and unpickles it when a sweep resumes, so it
    holds only the experiment path; the run ids, tracking URI and parent run come
    from the sweep's journal there when the experiment starts (or starts again).
    """

    def __init__(self, experiment_path: str, *, epochs: int, on_alert: WebhookSender | None = None) -> None:
        self.experiment_path = experiment_path
        self.epochs = epochs
        self.on_alert = on_alert
        self._reset()

    def _reset(self) -> None:
        self.journal: SweepJournal | None = None
        self.writer: MlflowWriter | None = None
        self._logged_epochs: dict[str, int] = {}
        self._histograms: dict[str, tuple[dict, dict]] = {}
        # Figures are drawn here, off Tune's event loop, which every running trial's report waits on.
        self._figures = ThreadPoolExecutor(max_workers=1, thread_name_prefix="histogram-figures")

    def __getstate__(self) -> dict[str, Any]:
        return {"experiment_path": self.experiment_path, "epochs": self.epochs, "on_alert": self.on_alert}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def setup(self, **info: Any) -> None:
        self.journal = SweepJournal.load(self.experiment_path)
        self.writer = MlflowWriter(self.journal.tracking_uri, Spool(self.experiment_path), self.journal)
        # A resumed sweep: epochs its runs already hold are not logged again.
        for trial_id, entry in self.journal.trial_runs.items():
            created = not entry["run_id"].startswith("pending:")
            history = self.writer.client.get_metric_history(entry["run_id"], "val_acc") if created else []
            self._logged_epochs[trial_id] = max((metric.step for metric in history), default=0)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.journal.run_of(trial.trial_id) is not None:
            return  # a retry, or a trial of a resumed sweep: it goes on in its run
        live = {other.trial_id for other in trials if other is not trial}
        adopted = self.journal.adopt_run(trial.trial_id, trial.config, live)
        if adopted is not None:
            self.writer.log_batch(adopted, tags=[RunTag("sweep.trial_id", trial.trial_id)])
            return
        run_id = self.writer.create_run(
            trial.trial_id,
            self.journal.experiment_id,
            tags={
                MLFLOW_PARENT_RUN_ID: self.journal.parent_run_id,
                MLFLOW_RUN_NAME: str(trial),
                "sweep.trial_id": trial.trial_id,
                "sweep.status": "running",
            },
        )
        self.journal.record_run(trial.trial_id, run_id, trial.config)
        self.writer.log_batch(run_id, params=[Param(key, _param_text(value)) for key, value in trial.config.items()])

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        run_id = self.journal.run_of(trial.trial_id)
        if run_id is not None:
            self.writer.log_batch(run_id, tags=[RunTag("sweep.retries", str(trial.num_failures))])

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.journal.run_of(trial.trial_id)
        epoch = int(result["training_iteration"])
        if epoch <= self._logged_epochs.get(trial.trial_id, 0):
            return  # a restarted trial going over epochs after its checkpoint that its run already holds
        self._logged_epochs[trial.trial_id] = epoch
        now = _now_ms()
        metrics = [Metric(key, float(result[key]), now, epoch) for key in TRACKED_METRICS if key in result]
        diagnostics = diagnostics_of(result)
        if diagnostics:
            metrics += diagnostic_metrics(diagnostics, now)
            self._keep_histograms(trial.trial_id, diagnostics["histograms"])
            self._record_alerts(trial, run_id, diagnostics["alerts"])
        tags = [RunTag("sweep.node_id", result["node_id"])] if "node_id" in result and result.get("iterations_since_restore") == 1 else []
        self.writer.log_batch(run_id, metrics=metrics, tags=tags)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Send what is queued (or keep it in the spool) before the sweep reports its end."""
        self._figures.shutdown(wait=True)
        if self.writer is not None:
            self.writer.close()
        if self.on_alert is not None:
            self.on_alert.close()

    def _keep_histograms(self, trial_id: str, snapshots: list[dict[str, Any]]) -> None:
        """Keep the first snapshot (initialization) and the latest one (the end so far)."""
        if snapshots:
            initial, _ = self._histograms.get(trial_id, (snapshots[0], None))
            self._histograms[trial_id] = (initial, snapshots[-1])

    def _record_alerts(self, trial: Any, run_id: str, alerts: list[dict[str, Any]]) -> None:
        if not alerts:
            return
        alerts = [{"trial": str(trial), "run_id": run_id, **alert} for alert in alerts]
        for alert in alerts:
            if not math.isfinite(alert["value"]):
                alert["value"] = str(alert["value"])  # JSON has no NaN or inf
        self.journal.add_alerts(alerts)
        if self.on_alert is not None:
            # From now, not from when the webhook's thread gets to it: a burst of alerts waits once.
            deadline = time.monotonic() + ALERT_WAITS_FOR_RUN_S
            for alert in alerts:
                self.on_alert.send(alert, run_id=lambda: self.writer.created_run_id(run_id, deadline=deadline))
        summaries = [alert_summary(alert) for alert in self._alerts_of(trial)]
        self.writer.log_batch(run_id, tags=[RunTag("alert.update_ratio", _truncate("; ".join(summaries)))])

    def _alerts_of(self, trial: Any) -> list[dict[str, Any]]:
        # By trial, not run id: the sender may swap a run's pending id for its real one at any time.
        return [alert for alert in self.journal.alerts if alert["trial"] == str(trial)]

    def _finish(self, trial: Any, *, errored: bool) -> None:
        run_id = self.journal.run_of(trial.trial_id)
        if run_id is None:
            return
        status = trial_status(trial.last_result, epochs=self.epochs, errored=errored)
        tags = [RunTag("sweep.status", status)]
        if (trial.last_result or {}).get("stop_reason"):
            tags.append(RunTag("sweep.stop_reason", trial.last_result["stop_reason"]))
        self.writer.log_batch(run_id, tags=tags)
        trial_alerts = self._alerts_of(trial)
        if trial_alerts:
            # Run ids still pending here are resolved by the writer when it sends the file.
            self.writer.log_bytes(run_id, "alerts.json", json.dumps(trial_alerts, indent=2).encode())
        if trial.trial_id in self._histograms:
            self._figures.submit(self._log_histogram_figure, run_id, self._histograms.pop(trial.trial_id), title=f"{trial}: hidden activations")
        self.writer.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")

    def _log_histogram_figure(self, run_id: str, snapshots: tuple[dict, dict], *, title: str) -> None:
        from sweeps.histogram_figure import activation_histograms_png

        try:
            figure = activation_histograms_png(*snapshots, title=title)
        except Exception as error:  # a figure that cannot be drawn is no reason to lose the sweep
            self.writer.warn(f"{title}: the activation histogram figure could not be drawn: {_first_line(error)}")
            return
        self.writer.log_bytes(run_id, "activation_histograms.png", figure)


def diagnostics_of(result: dict[str, Any]) -> dict[str, Any] | None:
    """A trial's diagnostics from its Tune result, where the trainable sends them as JSON text."""
    diagnostics = result.get("diagnostics")
    return json.loads(diagnostics) if isinstance(diagnostics, str) else diagnostics


def diagnostic_metrics(diagnostics: dict[str, Any], timestamp: int) -> list[Metric]:
    """update_ratio/<param> and act_*/<layer> metrics, each at its global optimizer step."""
    metrics = []
    for step, ratios in diagnostics["update_ratios"]:
        metrics += [Metric(f"update_ratio/{name}", value, timestamp, step) for name, value in ratios.items()]
        if ratios:
            metrics.append(Metric("update_ratio/median", statistics.median(ratios.values()), timestamp, step))
    for step, layers in diagnostics["activations"]:
        for layer, stats in layers.items():
            metrics += [Metric(f"{stat}/{layer}", value, timestamp, step) for stat, value in stats.items()]
    return metrics


def _truncate(text: str, limit: int = 5000) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(key, _param_text(value)) for key, value in params.items()]
    for batch in _chunks(items, MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=batch)


def _param_text(value: Any) -> str:
    # YAML spelling (true/false, plain numbers) so params read like the sweep file.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now_ms() -> int:
    return int(time.time() * 1000)


def find_sweep_run(client: MlflowClient, experiment_or_run: str) -> Any:
    """A sweep's parent run: by its run id, or the newest sweep in the experiment of that name."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(experiment_or_run)
    if experiment is None:
        try:
            run = client.get_run(experiment_or_run)
        except MlflowException:
            raise LookupError(f"no MLflow experiment or run named {experiment_or_run!r}") from None
        if MLFLOW_PARENT_RUN_ID in run.data.tags:
            raise LookupError(f"run {experiment_or_run} is a trial; give its sweep's run id or experiment name")
        return run
    parents = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`sweep.role` = 'parent'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not parents:
        raise LookupError(f"experiment {experiment_or_run!r} holds no sweep run")
    return parents[0]


def sweep_trials(client: MlflowClient, parent: Any) -> list[Any]:
    """The trial runs nested under a sweep's parent run."""
    return client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'", max_results=50000
    )


def metric_history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(metric.step, metric.value) for metric in client.get_metric_history(run_id, key)]


def read_sweep_file(client: MlflowClient, parent_run_id: str) -> str:
    """The resolved sweep file logged with the sweep's parent run."""
    import mlflow.artifacts

    return mlflow.artifacts.load_text(f"{client.get_run(parent_run_id).info.artifact_uri}/search.yaml")


def log_report_files(client: MlflowClient, parent_run_id: str, paths: list[str]) -> None:
    for path in paths:
        client.log_artifact(parent_run_id, path, "report")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
