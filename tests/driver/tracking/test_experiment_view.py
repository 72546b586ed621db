"""Where the MLflow UI lands for a sweep: the experiment's kind, its saved view's columns, the link,
artifacts beside the store."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from sweeps.driver.tracking.experiment_view import (
    EXPERIMENT_KIND_TAG,
    SHARED_VIEW_PREFIX,
    artifact_location,
    experiment_url,
    mark_sweep_experiment,
    sweep_experiments,
    table_columns,
    ui_base_url,
)
from sweeps.driver.tracking.sweep_run import open_sweep_run


def test_a_sweep_marks_its_experiment_and_each_sweep_adds_its_columns_to_the_saved_view(
    tracking_uri,
):
    client = MlflowClient(tracking_uri)
    params = {
        "name": "s",
        "search.metric": "val_acc",
        "params.lr": {"log_uniform": [1e-4, 1.0]},
        "params.momentum": 0.9,
    }
    experiment_id, _ = open_sweep_run(
        tracking_uri, experiment_name="s", run_name="s-1", sweep_yaml="name: s\n", params=params
    )
    experiment = client.get_experiment(experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    # MLflow's saved-view envelope, its state a JSON string: a bare state is refused by the UI.
    envelope = json.loads(experiment.tags[SHARED_VIEW_PREFIX + "sweep"])
    assert isinstance(envelope["name"], str) and isinstance(envelope["createdAt"], int)
    columns = json.loads(envelope["state"])["selectedColumns"]
    assert (
        columns[:3] == ["metrics.`val_acc`", "metrics.`best_val_acc`", "params.`lr`"]
        and "params.`momentum`" not in columns
    )

    mark_sweep_experiment(
        client, experiment_id, columns=table_columns(["lr", "activation"], "val_acc")
    )
    merged = json.loads(
        json.loads(client.get_experiment(experiment_id).tags[SHARED_VIEW_PREFIX + "sweep"])["state"]
    )["selectedColumns"]
    assert merged == columns + ["params.`activation`"]  # a refined sweep's columns join, none twice


def test_a_sqlite_stores_artifacts_go_beside_its_database(tmp_path, tracking_uri, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    experiment_id, run_id = open_sweep_run(
        tracking_uri, experiment_name="my sweep", run_name="b", sweep_yaml="name: b\n", params={}
    )
    folder = tmp_path / "mlruns" / "my_sweep"  # tmp_path holds the database
    assert (
        MlflowClient(tracking_uri).get_experiment(experiment_id).artifact_location
        == f"file://{folder}"
    )
    assert (folder / run_id / "artifacts" / "search.yaml").exists() and not (
        elsewhere / "mlruns"
    ).exists()
    assert artifact_location("http://mlflow:5000", "s") is None  # a server decides for itself


def test_links_open_the_runs_tab_of_the_store_that_holds_the_sweep(tracking_uri):
    assert ui_base_url("http://mlflow.example:5000/") == "http://mlflow.example:5000"
    assert ui_base_url(tracking_uri) == "http://127.0.0.1:5000"
    assert (
        experiment_url("http://127.0.0.1:5000", "7")
        == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=sweep"
    )
    open_sweep_run(
        tracking_uri,
        experiment_name="listed",
        run_name="l",
        sweep_yaml="name: l\n",
        params={"search.metric": "val_acc"},
    )
    assert [(name, view) for name, _, view in sweep_experiments(tracking_uri)] == [
        ("listed", True)
    ]  # not the empty Default
