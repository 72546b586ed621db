"""The Tune callback that keeps one MLflow child run per trial under the sweep's parent run.

Only the driver talks to MLflow: trials report to Tune, and this callback turns Tune's
events into writes queued on the tracking package's writer, so workers need no tracking
credentials and a sqlite store never sees writers from several processes. It also keeps
the sweep's journal, hands alerts to the webhook and has each trial's histogram figure
drawn.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ray import tune

from sweeps.alerts import alert_summary
from sweeps.driver.events.webhook import WebhookSender
from sweeps.driver.record.journal import SweepJournal
from sweeps.driver.record.spool import Spool
from sweeps.driver.tracking.batching import MetricPoint, truncate
from sweeps.driver.tracking.sweep_run import param_text
from sweeps.driver.tracking.writer import MlflowWriter
from sweeps.epoch_report import EPOCH_METRICS, diagnostics_of
from sweeps.errors import first_line
from sweeps.run_names import trial_run_name
from sweeps.trial_status import trial_status

if TYPE_CHECKING:
    from ray.tune.stopper import Stopper

    from sweeps.driver.events.member_events import SweepTrial

# an alert sent while MLflow is away names no run rather than wait for it
ALERT_WAITS_FOR_RUN_S = 10.0


class MlflowTrialLogger(tune.Callback):
    """A Tune callback that keeps one MLflow child run per trial under the sweep's parent run.

    Tune pickles it with the experiment and unpickles it when a sweep resumes, so it
    holds only the experiment path; the run ids, tracking URI and parent run come
    from the sweep's journal there when the experiment starts (or starts again).
    """

    def __init__(
        self,
        experiment_path: str,
        *,
        epochs: int,
        sampled: tuple[str, ...] = (),
        on_alert: WebhookSender | None = None,
    ) -> None:
        self.experiment_path = experiment_path
        self.epochs = epochs
        self.sampled = sampled  # the params a trial's run name shows
        self.on_alert = on_alert
        self._reset()

    def _reset(self) -> None:
        self.journal: SweepJournal | None = None
        self.writer: MlflowWriter | None = None
        self._logged_epochs: dict[str, int] = {}
        self._unfinished: set[str] = set()  # trials started and not yet ended
        self._histograms: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        # Figures are drawn here, off Tune's event loop, which every running trial's report waits
        # on.
        self._figures = ThreadPoolExecutor(max_workers=1, thread_name_prefix="histogram-figures")

    def __getstate__(self) -> dict[str, Any]:
        return {
            "experiment_path": self.experiment_path,
            "epochs": self.epochs,
            "sampled": self.sampled,
            "on_alert": self.on_alert,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def setup(
        self,
        stop: Stopper | None = None,
        num_samples: int | None = None,
        total_num_samples: int | None = None,
        **info: Any,
    ) -> None:
        journal = self.journal = SweepJournal.load(self.experiment_path)
        # No patience of its own: the sweep's closing writer takes its spool over and waits.
        writer = self.writer = MlflowWriter(
            journal.tracking_uri, Spool(self.experiment_path), journal, patience_s=0
        )
        # A resumed sweep: epochs its runs already hold are not logged again.
        for trial_id, entry in journal.trial_runs.items():
            created = not entry["run_id"].startswith("pending:")
            self._logged_epochs[trial_id] = (
                writer.last_step(entry["run_id"], "val_acc") if created else 0
            )

    def _started(self) -> tuple[SweepJournal, MlflowWriter]:
        """The journal and writer `setup` made: Tune calls it before any other hook."""
        assert self.journal is not None and self.writer is not None, "setup() was not called"
        return self.journal, self.writer

    def on_trial_start(
        self, iteration: int, trials: Sequence[SweepTrial], trial: SweepTrial, **info: Any
    ) -> None:
        journal, writer = self._started()
        self._unfinished.add(trial.trial_id)
        existing = journal.run_of(trial.trial_id)
        if existing is not None:
            # A retry, or a trial of a resumed sweep: it goes on in its run, which an
            # interruption may have closed.
            writer.reopen_run(existing)
            writer.log_batch(existing, tags={"sweep.status": "running"})
            journal.record_status(trial.trial_id, "running")
            return
        live = {other.trial_id for other in trials if other is not trial}
        adopted = journal.adopt_run(trial.trial_id, trial.config, live)
        if adopted is not None:
            writer.log_batch(adopted, tags={"sweep.trial_id": trial.trial_id})
            return
        run_id = writer.create_run(
            trial.trial_id,
            journal.experiment_id,
            parent_run_id=journal.parent_run_id,
            run_name=self._name(trial),
            tags={
                "sweep.trial_id": trial.trial_id,
                "sweep.status": "running",
                # a fused group's member says which group (driver/member_events.py)
                **getattr(trial, "run_tags", {}),
            },
        )
        journal.record_run(trial.trial_id, run_id, trial.config)
        writer.log_batch(
            run_id, params={key: param_text(value) for key, value in trial.config.items()}
        )

    def on_trial_recover(
        self, iteration: int, trials: Sequence[SweepTrial], trial: SweepTrial, **info: Any
    ) -> None:
        journal, writer = self._started()
        run_id = journal.run_of(trial.trial_id)
        if run_id is not None:
            writer.log_batch(run_id, tags={"sweep.retries": str(trial.num_failures)})

    def on_trial_result(
        self,
        iteration: int,
        trials: Sequence[SweepTrial],
        trial: SweepTrial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        journal, writer = self._started()
        run_id = journal.run_of(trial.trial_id)
        assert run_id is not None, "on_trial_start recorded the trial's run"
        epoch = int(result["training_iteration"])
        if epoch <= self._logged_epochs.get(trial.trial_id, 0):
            # a restarted trial going over epochs after its checkpoint that its run already holds
            return
        self._logged_epochs[trial.trial_id] = epoch
        now = int(time.time() * 1000)
        metrics = [
            MetricPoint(key, float(result[key]), now, epoch)
            for key in EPOCH_METRICS
            if key in result
        ]
        diagnostics = diagnostics_of(result)
        if diagnostics:
            metrics += diagnostic_metrics(diagnostics, now)
            self._keep_histograms(trial.trial_id, diagnostics["histograms"])
            self._record_alerts(trial, run_id, diagnostics["alerts"])
        first_on_its_node = "node_id" in result and result.get("iterations_since_restore") == 1
        tags = {"sweep.node_id": result["node_id"]} if first_on_its_node else {}
        writer.log_batch(run_id, metrics=metrics, tags=tags)

    def on_trial_complete(
        self, iteration: int, trials: Sequence[SweepTrial], trial: SweepTrial, **info: Any
    ) -> None:
        self._finish(trial, errored=False)

    def on_trial_error(
        self, iteration: int, trials: Sequence[SweepTrial], trial: SweepTrial, **info: Any
    ) -> None:
        self._finish(trial, errored=True)

    def on_experiment_end(self, trials: Sequence[SweepTrial], **info: Any) -> None:
        # Every trial ends before the experiment does, unless the sweep was stopped
        # (a signal, or the driver failing): close those runs as interrupted, not RUNNING.
        for trial_id in sorted(self._unfinished):
            journal, writer = self._started()  # a trial started, so setup() ran
            run_id = journal.run_of(trial_id)
            if run_id is not None:
                writer.log_batch(run_id, tags={"sweep.status": "interrupted"})
                writer.set_terminated(run_id, "KILLED")
                journal.record_status(trial_id, "interrupted")
        self._unfinished.clear()
        self.close()

    def close(self) -> None:
        """Send what is queued (or keep it in the spool) before the sweep reports its end."""
        self._figures.shutdown(wait=True)
        if self.writer is not None:
            # the sweep's closing writer takes the spool over and waits for the store
            self.writer.close()
        if self.on_alert is not None:
            self.on_alert.close()

    def _keep_histograms(self, trial_id: str, snapshots: list[dict[str, Any]]) -> None:
        """Keep the first snapshot (initialization) and the latest one (the end so far)."""
        if snapshots:
            initial, _ = self._histograms.get(trial_id, (snapshots[0], None))
            self._histograms[trial_id] = (initial, snapshots[-1])

    def _record_alerts(self, trial: SweepTrial, run_id: str, alerts: list[dict[str, Any]]) -> None:
        if not alerts:
            return
        journal, writer = self._started()
        alerts = [{"trial": self._name(trial), "run_id": run_id, **alert} for alert in alerts]
        for alert in alerts:
            if not math.isfinite(alert["value"]):
                alert["value"] = str(alert["value"])  # JSON has no NaN or inf
        journal.add_alerts(alerts)
        if self.on_alert is not None:
            # From now, not from when the webhook's thread gets to it: a burst of alerts waits once.
            deadline = time.monotonic() + ALERT_WAITS_FOR_RUN_S
            for alert in alerts:
                self.on_alert.send(
                    alert, run_id=lambda: writer.created_run_id(run_id, deadline=deadline)
                )
        summaries = [alert_summary(alert) for alert in self._alerts_of(trial)]
        writer.log_batch(run_id, tags={"alert.update_ratio": truncate("; ".join(summaries))})

    def _alerts_of(self, trial: SweepTrial) -> list[dict[str, Any]]:
        journal, _ = self._started()
        # By trial, not run id: the sender may swap a run's pending id for its real one at any time.
        return [alert for alert in journal.alerts if alert["trial"] == self._name(trial)]

    def _name(self, trial: SweepTrial) -> str:
        return trial_run_name(trial.trial_id, trial.config, self.sampled)

    def _finish(self, trial: SweepTrial, *, errored: bool) -> None:
        journal, writer = self._started()
        self._unfinished.discard(trial.trial_id)
        run_id = journal.run_of(trial.trial_id)
        if run_id is None:
            return
        status = trial_status(trial.last_result, epochs=self.epochs, errored=errored)
        journal.record_status(trial.trial_id, status)
        tags = {"sweep.status": status}
        if (trial.last_result or {}).get("stop_reason"):
            tags["sweep.stop_reason"] = trial.last_result["stop_reason"]
        writer.log_batch(run_id, tags=tags)
        trial_alerts = self._alerts_of(trial)
        if trial_alerts:
            # Run ids still pending here are resolved by the writer when it sends the file.
            writer.log_bytes(run_id, "alerts.json", json.dumps(trial_alerts, indent=2).encode())
        if trial.trial_id in self._histograms:
            self._figures.submit(
                self._log_histogram_figure,
                run_id,
                self._histograms.pop(trial.trial_id),
                title=f"{self._name(trial)}: hidden activations",
            )
        writer.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")

    def _log_histogram_figure(
        self, run_id: str, snapshots: tuple[dict[str, Any], dict[str, Any]], *, title: str
    ) -> None:
        from sweeps.driver.events.histogram_figure import activation_histograms_png

        _, writer = self._started()
        try:
            figure = activation_histograms_png(*snapshots, title=title)
        except Exception as error:  # a figure that cannot be drawn is no reason to lose the sweep
            writer.warn(
                f"{title}: the activation histogram figure could not be drawn: {first_line(error)}"
            )
            return
        writer.log_bytes(run_id, "activation_histograms.png", figure)


def diagnostic_metrics(diagnostics: dict[str, Any], timestamp: int) -> list[MetricPoint]:
    """update_ratio/<param> and act_*/<layer> metrics, each at its global optimizer step."""
    metrics: list[MetricPoint] = []
    for step, ratios in diagnostics["update_ratios"]:
        metrics += [
            MetricPoint(f"update_ratio/{name}", value, timestamp, step)
            for name, value in ratios.items()
        ]
        if ratios:
            metrics.append(
                MetricPoint(
                    "update_ratio/median", statistics.median(ratios.values()), timestamp, step
                )
            )
    for step, layers in diagnostics["activations"]:
        for layer, stats in layers.items():
            metrics += [
                MetricPoint(f"{stat}/{layer}", value, timestamp, step)
                for stat, value in stats.items()
            ]
    return metrics
