"""The MLflow writer: queued writes sent off the caller's thread, kept through an outage, sent
once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeps.driver.events.webhook import WebhookSender
from sweeps.driver.record.journal import SweepJournal
from sweeps.driver.record.spool import Spool
from sweeps.driver.tracking import writer as writer_module
from sweeps.driver.tracking.batching import MetricPoint
from sweeps.driver.tracking.writer import MlflowWriter
from tests.conftest import free_port
from tests.driver.tracking.test_batching import log_batch


def make_journal(tmp_path, tracking_uri: str) -> SweepJournal:
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("writer")
    parent = client.create_run(experiment_id).info.run_id
    journal = SweepJournal(
        experiment_path=str(tmp_path / "experiment"),
        sweep_name="writer",
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=parent,
        sweep_yaml="name: writer\n",
    )
    journal.save()
    return journal


def test_writes_reach_the_store_in_order_and_the_journal_gets_the_real_run_id(
    tmp_path, tracking_uri
):
    journal = make_journal(tmp_path, tracking_uri)
    writer = MlflowWriter(tracking_uri, Spool(journal.experiment_path), journal, patience_s=30)
    run_id = writer.create_run(
        "trial_1",
        journal.experiment_id,
        parent_run_id=journal.parent_run_id,
        run_name="t1",
        tags={"sweep.trial_id": "trial_1"},
    )
    assert run_id == "pending:trial_1"  # the caller does not wait for the store
    journal.record_run("trial_1", run_id, {"lr": 0.1})
    writer.log_batch(run_id, params={"lr": "0.1"})
    for epoch in range(1, 31):
        writer.log_batch(
            run_id,
            metrics=[MetricPoint("val_acc", epoch / 30, 0, epoch)],
            tags={"sweep.status": "running"},
        )
    writer.log_batch(run_id, tags={"sweep.status": "completed"})
    writer.log_bytes(run_id, "figure.txt", b"a figure")
    writer.set_terminated(run_id, "FINISHED")
    assert writer.close() == 0

    real_id = SweepJournal.load(journal.experiment_path).run_of("trial_1")
    assert real_id == writer.run_id("pending:trial_1") and not real_id.startswith("pending:")
    client = MlflowClient(tracking_uri)
    run = client.get_run(real_id)
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}
    assert run.data.tags["sweep.status"] == "completed"
    assert [
        (metric.step, metric.value) for metric in client.get_metric_history(real_id, "val_acc")
    ] == [(epoch, epoch / 30) for epoch in range(1, 31)]
    assert [artifact.path for artifact in client.list_artifacts(real_id)] == ["figure.txt"]


def test_a_store_that_does_not_answer_gets_nothing_lost_and_nothing_raised(
    tmp_path, tracking_uri, monkeypatch
):
    monkeypatch.setattr(writer_module, "RETRY_DELAYS_S", (0.0,))
    journal = make_journal(tmp_path, tracking_uri)
    unreachable = f"http://127.0.0.1:{free_port()}"
    warnings = []
    writer = MlflowWriter(
        unreachable, Spool(journal.experiment_path), journal, patience_s=0, warn=warnings.append
    )
    run_id = writer.create_run(
        "trial_1",
        journal.experiment_id,
        parent_run_id=journal.parent_run_id,
        run_name="t1",
        tags={},
    )
    writer.log_batch(run_id, metrics=[MetricPoint("val_acc", 0.5, 0, 1)])
    writer.log_bytes(run_id, "figure.txt", b"kept with the spool")
    assert writer.close() == 3
    assert any("does not answer" in warning for warning in warnings)

    # What waited is sent once the store answers: the run, its metric and its artifact.
    spooled = [
        json.loads(line)
        for line in (tmp_path / "experiment" / "mlflow-spool.jsonl").read_text().splitlines()
    ]
    assert [operation["op"] for operation in spooled] == ["create_run", "log_batch", "log_bytes"]
    resent = MlflowWriter(
        tracking_uri,
        Spool(journal.experiment_path),
        SweepJournal.load(journal.experiment_path),
        patience_s=30,
        warn=warnings.append,
    )
    assert resent.close() == 0
    real_id = resent.run_id("pending:trial_1")
    client = MlflowClient(tracking_uri)
    assert client.get_metric_history(real_id, "val_acc")[0].value == 0.5
    assert [artifact.path for artifact in client.list_artifacts(real_id)] == ["figure.txt"]


def test_an_alert_reaches_the_webhook_and_alerts_json_with_the_runs_real_id(
    tmp_path, tracking_uri, alert_webhook
):
    journal = make_journal(tmp_path, tracking_uri)
    writer = MlflowWriter(tracking_uri, Spool(journal.experiment_path), journal, patience_s=30)
    webhook = WebhookSender(alert_webhook.url, warn=print)
    run_id = writer.create_run(
        "trial_1",
        journal.experiment_id,
        parent_run_id=journal.parent_run_id,
        run_name="t1",
        tags={},
    )
    alert = {"trial": "trial_1", "run_id": run_id, "direction": "too_high"}
    # Queued while the run is still pending: the webhook's thread waits for the sender to create it.
    webhook.send(
        alert, run_id=lambda: writer.created_run_id(run_id, deadline=time.monotonic() + 30)
    )
    writer.log_bytes(run_id, "alerts.json", json.dumps([alert]).encode())
    webhook.close()
    assert writer.close() == 0

    real_id = writer.run_id(run_id)
    assert not real_id.startswith("pending:")
    assert alert_webhook.received == [alert | {"run_id": real_id}]
    stored = MlflowClient(tracking_uri).download_artifacts(real_id, "alerts.json", str(tmp_path))
    assert json.loads(Path(stored).read_text()) == [alert | {"run_id": real_id}]


def test_an_alert_sent_while_mlflow_is_away_names_no_run_and_does_not_hold_up_the_end(
    tmp_path, tracking_uri, alert_webhook, monkeypatch
):
    monkeypatch.setattr(writer_module, "RETRY_DELAYS_S", (0.0,))
    journal = make_journal(tmp_path, tracking_uri)
    writer = MlflowWriter(
        f"http://127.0.0.1:{free_port()}",
        Spool(journal.experiment_path),
        journal,
        patience_s=0,  # as the trial logger's writer: the sweep's closing writer waits instead
        warn=lambda line: None,
    )
    webhook = WebhookSender(alert_webhook.url, warn=print)
    run_id = writer.create_run(
        "trial_1",
        journal.experiment_id,
        parent_run_id=journal.parent_run_id,
        run_name="t1",
        tags={},
    )
    started = time.monotonic()
    # each would wait a minute for a run that the closed writer can no longer create
    for step in range(5):
        webhook.send(
            {"trial": "trial_1", "step": step},
            run_id=lambda: writer.created_run_id(run_id, deadline=time.monotonic() + 60),
        )
    assert writer.close() == 1
    webhook.close()
    assert time.monotonic() - started < 30
    assert alert_webhook.received == [
        {"trial": "trial_1", "step": step, "run_id": None} for step in range(5)
    ]


def test_writes_a_killed_driver_left_in_the_spool_are_sent_once_without_a_second_run(
    tmp_path, tracking_uri
):
    journal = make_journal(tmp_path, tracking_uri)
    journal.record_run("trial_1", "pending:trial_1", {"lr": 0.1})
    tags = {"sweep.trial_id": "trial_1", "mlflow.parentRunId": journal.parent_run_id}
    # The dead driver's sender had created the run, but died before it counted the write as sent.
    client = MlflowClient(tracking_uri)
    created = client.create_run(journal.experiment_id, tags=tags).info.run_id
    Spool(journal.experiment_path).append(
        [
            {
                "op": "create_run",
                "key": "trial_1",
                "experiment_id": journal.experiment_id,
                "tags": tags,
            },
            log_batch("pending:trial_1", metrics=[["val_acc", 0.9, 0, 1]]),
            {"op": "set_terminated", "run_id": "pending:trial_1", "status": "FINISHED"},
        ]
    )
    with open(Spool(journal.experiment_path).path, "a") as spool:
        # torn by the kill: never acknowledged
        spool.write('{"op": "log_batch", "run_id": "pending:tri')

    assert (
        MlflowWriter(
            tracking_uri,
            Spool(journal.experiment_path),
            SweepJournal.load(journal.experiment_path),
            patience_s=30,
        ).close()
        == 0
    )
    runs = client.search_runs(
        [journal.experiment_id], filter_string="tags.`sweep.trial_id` = 'trial_1'"
    )
    assert [run.info.run_id for run in runs] == [created]
    assert runs[0].info.status == "FINISHED" and runs[0].data.metrics == {"val_acc": 0.9}
    assert SweepJournal.load(journal.experiment_path).run_of("trial_1") == created
    assert len(Spool(journal.experiment_path)) == 0  # sent, and the spool starts afresh


@pytest.mark.slow
def test_a_store_that_answers_again_while_the_writer_closes_gets_every_write(
    tmp_path, mlflow_server, monkeypatch
):
    monkeypatch.setattr(writer_module, "RETRY_DELAYS_S", (0.0,))
    client = MlflowClient(mlflow_server.url)
    experiment_id = client.create_experiment("late")
    parent = client.create_run(experiment_id).info.run_id
    mlflow_server.stop()
    warnings: list[str] = []
    writer = MlflowWriter(
        mlflow_server.url, Spool(str(tmp_path / "experiment")), patience_s=120, warn=warnings.append
    )
    run_id = writer.create_run(
        "trial_1",
        experiment_id,
        parent_run_id=parent,
        run_name="t1",
        tags={"sweep.trial_id": "trial_1"},
    )
    for epoch in range(1, 101):
        writer.log_batch(run_id, metrics=[MetricPoint("val_acc", epoch / 100, 0, epoch)])
    deadline = time.monotonic() + 5
    while not writer.offline and time.monotonic() < deadline:
        time.sleep(0.1)  # the sender finds the store away
    restarting = threading.Thread(target=mlflow_server.start)
    restarting.start()  # answers again some seconds into the close
    assert writer.close() == 0
    restarting.join()
    assert any("trying its" in warning and "before exiting" in warning for warning in warnings)
    real_id = writer.run_id(run_id)
    assert [
        metric.step
        for metric in MlflowClient(mlflow_server.url).get_metric_history(real_id, "val_acc")
    ] == list(range(1, 101))
