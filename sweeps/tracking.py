"""Every MLflow call sweep makes: the sweep's parent run and one child run per trial.

Only the driver talks to MLflow. Trials report to Tune, and the callback below
turns Tune's events into runs, so workers need no tracking credentials and a
sqlite store never sees writers from several processes.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any, Callable, Iterable

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from ray import tune

from sweeps.diagnostics import alert_summary
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
    client: MlflowClient,
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
    client.log_batch(run_id, metrics=metrics, tags=tags)
    succeeded = sum(status_counts.get(status, 0) for status in SUCCEEDED)
    client.set_terminated(run_id, "FINISHED" if succeeded else "FAILED")


def fail_sweep_run(client: MlflowClient, run_id: str) -> None:
    """Close the parent run when the sweep itself stopped (an error or Ctrl-C)."""
    client.set_terminated(run_id, "KILLED")


class MlflowTrialLogger(tune.Callback):
    """A Tune callback that keeps one MLflow child run per trial under the sweep's parent run."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        *,
        epochs: int,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.epochs = epochs
        self.on_alert = on_alert
        self.run_ids: dict[str, str] = {}
        self.alerts: list[dict[str, Any]] = []
        self._histograms: dict[str, tuple[dict, dict]] = {}
        self._client = MlflowClient(tracking_uri)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.run_ids:
            return
        run = self._client.create_run(
            self.experiment_id,
            tags={
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                MLFLOW_RUN_NAME: str(trial),
                "sweep.trial_id": trial.trial_id,
                "sweep.status": "running",
            },
        )
        self.run_ids[trial.trial_id] = run.info.run_id
        _log_params(self._client, run.info.run_id, trial.config)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.run_ids[trial.trial_id]
        epoch = int(result["training_iteration"])
        now = _now_ms()
        metrics = [Metric(key, float(result[key]), now, epoch) for key in TRACKED_METRICS if key in result]
        diagnostics = result.get("diagnostics")
        if diagnostics:
            metrics += diagnostic_metrics(diagnostics, now)
            self._keep_histograms(trial.trial_id, diagnostics["histograms"])
            self._record_alerts(trial, run_id, diagnostics["alerts"])
        tags = [RunTag("sweep.node_id", result["node_id"])] if "node_id" in result and epoch == 1 else []
        # Batched: one call carries the epoch's metrics and every diagnostic since the last one.
        for index, batch in enumerate(_chunks(metrics, MAX_METRICS_PER_BATCH)):
            self._client.log_batch(run_id, metrics=batch, tags=tags if index == 0 else [])

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
            self.alerts.append(alert)
            if self.on_alert is not None:
                self.on_alert(alert)
        summaries = [alert_summary(alert) for alert in self.alerts if alert["run_id"] == run_id]
        self._client.set_tag(run_id, "alert.update_ratio", _truncate("; ".join(summaries)))

    def _finish(self, trial: Any, *, errored: bool) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if run_id is None:
            return
        status = trial_status(trial.last_result, epochs=self.epochs, errored=errored)
        tags = [RunTag("sweep.status", status)]
        if (trial.last_result or {}).get("stop_reason"):
            tags.append(RunTag("sweep.stop_reason", trial.last_result["stop_reason"]))
        self._client.log_batch(run_id, tags=tags)
        trial_alerts = [alert for alert in self.alerts if alert["run_id"] == run_id]
        if trial_alerts:
            self._client.log_dict(run_id, trial_alerts, "alerts.json")
        if trial.trial_id in self._histograms:
            from sweeps.plots import activation_histograms, close

            figure = activation_histograms(*self._histograms.pop(trial.trial_id), title=f"{trial}: hidden activations")
            self._client.log_figure(run_id, figure, "activation_histograms.png")
            close(figure)
        self._client.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")


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
