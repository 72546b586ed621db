"""`sweep lecture`'s own run: in the experiment `lecture`, its files, numbers and verdicts all
logged, within MLflow's per-call limits."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from sweeps.driver.tracking.lecture_run import (
    LECTURE_EXPERIMENT,
    close_lecture_run,
    open_lecture_run,
)


def test_the_lecture_run_keeps_its_report_numbers_and_verdicts(tmp_path, tracking_uri):
    page = tmp_path / "index.html"
    page.write_text("<!doctype html>")
    experiment_id, run_id = open_lecture_run(tracking_uri, run_name="lecture-test", quick=True)
    # More metrics and tags than one log_batch call takes.
    metrics = {f"study.number_{index}": float(index) for index in range(1500)}
    tags = {f"lecture.verdict.claim_{index}": "reproduced" for index in range(150)}
    close_lecture_run(tracking_uri, run_id, files=[page], metrics=metrics, tags=tags, failed=False)
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert client.get_experiment(experiment_id).name == LECTURE_EXPERIMENT
    assert (
        run.info.status == "FINISHED"
        and run.data.tags["sweep.role"] == "lecture"
        and run.data.tags["lecture.quick"] == "true"
    )
    assert run.data.metrics == metrics
    assert all(run.data.tags[key] == value for key, value in tags.items())
    assert [artifact.path for artifact in client.list_artifacts(run_id, "report")] == [
        "report/index.html"
    ]
    # A second lecture goes to the same experiment.
    assert open_lecture_run(tracking_uri, run_name="lecture-again", quick=False)[0] == experiment_id
