"""Every MLflow call sweep makes: the sweep's parent run and one child run per trial.

Only the driver talks to MLflow. Trials report to Tune, and the callback below
turns Tune's events into runs, so workers need no tracking credentials and a
sqlite store never sees writers from several processes.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from ray import tune

from sweeps.diagnostics import alert_summary
from sweeps.journal import Spool, SweepJournal, read_bytes
from sweeps.trial_status import SUCCEEDED, trial_status

# MLflow's log_batch limits per call.
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100

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


def quiet_fast_http() -> None:
    """MLflow's HTTP defaults suit a notebook, not a sweep: it retries an unreachable
    server for minutes (MlflowWriter retries and spools instead) and prints a URL for
    every finished run. The user's own settings win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def probe(tracking_uri: str) -> None:
    """Raise if the store does not answer; a read, so a failed probe leaves nothing behind."""
    quiet_fast_http()
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
REPROBE_EVERY_S = 10.0


def is_outage(error: Exception) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.error_code in OUTAGE_ERROR_CODES
    # requests' and sqlalchemy's connection errors, without importing either here.
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"ConnectionError", "Timeout", "TimeoutError", "OperationalError"})


class MlflowWriter:
    """The sweep's MLflow writes, kept in order through an outage.

    A write that fails because the store does not answer is retried with backoff;
    if the store stays away, it and every later write go to the spool beside the
    experiment, and training carries on. Each later write first tries to send the
    backlog (at most every REPROBE_EVERY_S). A run created during an outage gets a
    `pending:` id until the store hands out its real one.
    """

    def __init__(self, tracking_uri: str, spool: Spool, journal: SweepJournal | None = None, *, warn: Callable[[str], None] = print) -> None:
        quiet_fast_http()
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.spool = spool
        self.journal = journal
        self.warn = warn
        self._next_probe = 0.0
        self._pending_ids: dict[str, str] = {}

    @property
    def offline(self) -> bool:
        return len(self.spool) > 0

    def create_run(self, key: str, experiment_id: str, tags: dict[str, str]) -> str:
        return self._submit({"op": "create_run", "key": key, "experiment_id": experiment_id, "tags": tags}) or f"pending:{key}"

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
        """An artifact at the run's root; its bytes wait in the spool during an outage."""
        self._submit({"op": "log_bytes", "run_id": run_id, "name": name}, content=content)

    def flush(self) -> int:
        """Send the backlog in order, stopping at the first write the store does not take; returns what is left."""
        sent = 0
        try:
            for operation in self.spool.operations:
                self._apply(operation)
                sent += 1
        except Exception as error:
            if not is_outage(error):
                raise
        finally:
            if sent:
                self.spool.pop_sent(sent)
                if not self.spool:
                    self.warn(f"MLflow at {self.tracking_uri} answers again; the {sent} writes kept during the outage are sent")
        return len(self.spool)

    def _submit(self, operation: dict[str, Any], content: bytes | None = None) -> str | None:
        if self.offline and time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + REPROBE_EVERY_S
            self.flush()
        if not self.offline:
            for delay in (*RETRY_DELAYS_S, None):
                try:
                    return self._apply(operation, content=content)
                except Exception as error:
                    if not is_outage(error):
                        raise
                    if delay is None:
                        self.warn(f"MLflow at {self.tracking_uri} does not answer ({_first_line(error)}); training goes on and its logs wait in {self.spool.path}")
                        self._next_probe = time.monotonic() + REPROBE_EVERY_S
                        break
                    time.sleep(delay)
        if content is not None:
            operation = operation | {"file": self.spool.keep_file(operation["name"], content)}
        self.spool.append(operation)
        return None

    def _apply(self, operation: dict[str, Any], content: bytes | None = None) -> str | None:
        kind = operation["op"]
        if kind == "create_run":
            run_id = self.client.create_run(operation["experiment_id"], tags=operation["tags"]).info.run_id
            pending = f"pending:{operation['key']}"
            self._pending_ids[pending] = run_id
            if self.journal is not None:
                self.journal.replace_run_id(pending, run_id)
            return run_id
        run_id = self._pending_ids.get(operation["run_id"], operation["run_id"])
        if kind == "log_batch":
            self.client.log_batch(
                run_id,
                metrics=[Metric(*item) for item in operation["metrics"]],
                params=[Param(*item) for item in operation["params"]],
                tags=[RunTag(*item) for item in operation["tags"]],
            )
        elif kind == "set_terminated":
            self.client.set_terminated(run_id, operation["status"])
        elif kind == "log_bytes":
            if content is None:
                content = read_bytes(operation["file"])
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / operation["name"]
                path.write_bytes(content)
                self.client.log_artifact(run_id, str(path))
        return None


class MlflowTrialLogger(tune.Callback):
    """A Tune callback that keeps one MLflow child run per trial under the sweep's parent run.

    Tune pickles it with the experiment and unpickles it when a sweep resumes, so it
    holds only the experiment path; the run ids, tracking URI and parent run come
    from the sweep's journal there when the experiment starts (or starts again).
    """

    def __init__(self, experiment_path: str, *, epochs: int, on_alert: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.experiment_path = experiment_path
        self.epochs = epochs
        self.on_alert = on_alert
        self._reset()

    def _reset(self) -> None:
        self.journal: SweepJournal | None = None
        self.writer: MlflowWriter | None = None
        self._logged_epochs: dict[str, int] = {}
        self._histograms: dict[str, tuple[dict, dict]] = {}

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
            history = [] if self.writer.offline else self.writer.client.get_metric_history(entry["run_id"], "val_acc")
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
        # Batched: one call carries the epoch's metrics and every diagnostic since the last one.
        for index, batch in enumerate(_chunks(metrics, MAX_METRICS_PER_BATCH)):
            self.writer.log_batch(run_id, metrics=batch, tags=tags if index == 0 else [])

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, errored=True)

    def _keep_histograms(self, trial_id: str, snapshots: list[dict[str, Any]]) -> None:
        """Keep the first snapshot (initialization) and the latest one (the end so far)."""
        if snapshots:
            initial, _ = self._histograms.get(trial_id, (snapshots[0], None))
            self._histograms[trial_id] = (initial, snapshots[-1])

    def _record_alerts(self, trial: Any, run_id: str, alerts: list[dict[str, Any]]) -> None:
        if not alerts:
            return
        for alert in alerts:
            alert = {"trial": str(trial), "run_id": run_id, **alert}
            if not math.isfinite(alert["value"]):
                alert["value"] = str(alert["value"])  # JSON has no NaN or inf
            self.journal.alerts.append(alert)
            if self.on_alert is not None:
                self.on_alert(alert)
        self.journal.save()
        summaries = [alert_summary(alert) for alert in self.journal.alerts if alert["run_id"] == run_id]
        self.writer.log_batch(run_id, tags=[RunTag("alert.update_ratio", _truncate("; ".join(summaries)))])

    def _finish(self, trial: Any, *, errored: bool) -> None:
        run_id = self.journal.run_of(trial.trial_id)
        if run_id is None:
            return
        status = trial_status(trial.last_result, epochs=self.epochs, errored=errored)
        tags = [RunTag("sweep.status", status)]
        if (trial.last_result or {}).get("stop_reason"):
            tags.append(RunTag("sweep.stop_reason", trial.last_result["stop_reason"]))
        self.writer.log_batch(run_id, tags=tags)
        trial_alerts = [alert for alert in self.journal.alerts if alert["run_id"] == run_id]
        if trial_alerts:
            self.writer.log_bytes(run_id, "alerts.json", json.dumps(trial_alerts, indent=2).encode())
        if trial.trial_id in self._histograms:
            from sweeps.plots import activation_histograms, close, png_bytes

            figure = activation_histograms(*self._histograms.pop(trial.trial_id), title=f"{trial}: hidden activations")
            self.writer.log_bytes(run_id, "activation_histograms.png", png_bytes(figure))
            close(figure)
        self.writer.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")


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
