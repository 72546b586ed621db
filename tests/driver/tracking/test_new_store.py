"""A new sqlite store's tables are made beside it while Ray starts and take its name only when the sweep opens."""
from __future__ import annotations

import os

from mlflow.tracking import MlflowClient

from sweeps.driver.tracking.new_store import NewStore


def uri(path) -> str:
    return f"sqlite:///{path}"


def test_a_new_store_is_made_aside_and_named_when_installed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "mlflow.db"
    new_store = NewStore()
    new_store.prepare(uri(database))
    assert not database.exists() and [path.name for path in tmp_path.iterdir()] == [f".mlflow.db.setup-{os.getpid()}"]
    new_store.install()
    assert [path.name for path in tmp_path.iterdir()] == ["mlflow.db"]
    (default,) = MlflowClient(uri(database)).search_experiments()
    # What MLflow records for its default experiment is what a store made in place records.
    in_place = tmp_path / "elsewhere" / "mlflow.db"
    in_place.parent.mkdir()
    (reference,) = MlflowClient(uri(in_place)).search_experiments()
    assert default.artifact_location == reference.artifact_location
    MlflowClient(uri(database)).create_experiment("mine")  # the store takes writes
    new_store.discard()
    assert database.exists()


def test_a_store_another_process_made_meanwhile_is_kept(tmp_path):
    database = tmp_path / "mlflow.db"
    new_store = NewStore()
    new_store.prepare(uri(database))
    MlflowClient(uri(database)).create_experiment("theirs")  # made in place, while ours was being set up
    new_store.install()
    assert [path.name for path in tmp_path.iterdir()] == ["mlflow.db"]
    assert "theirs" in {experiment.name for experiment in MlflowClient(uri(database)).search_experiments()}


def test_a_sweep_that_never_opens_leaves_nothing(tmp_path):
    new_store = NewStore()
    new_store.prepare(uri(tmp_path / "mlflow.db"))
    new_store.discard()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_store_or_another_kind_is_left_alone(tmp_path):
    database = tmp_path / "mlflow.db"
    MlflowClient(uri(database)).search_experiments()
    for tracking_uri in (uri(database), "http://127.0.0.1:9"):
        new_store = NewStore()
        new_store.prepare(tracking_uri)
        new_store.install()
        new_store.discard()
        assert new_store.tracking_uri == tracking_uri and [path.name for path in tmp_path.iterdir()] == ["mlflow.db"]
