"""The tracking store: which one a command uses, and whether it answers."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from sweeps.driver.tracking.store import StoreError, check_reachable
from tests.conftest import REPO


def test_a_new_sqlite_store_is_made_without_mlflows_announcements(tmp_path):
    # A person's first sweep creates the store; MLflow logs two INFO lines when it does.
    code = (
        "from sweeps.driver.tracking.store import with_store; "
        f"with_store('sqlite:///{tmp_path / 'new.db'}', lambda client: client.search_experiments())"
    )
    made = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "new.db").exists()
    assert made.stderr == ""


def test_one_rule_picks_the_tracking_uri_flag_then_environment_then_sweep_then_default(
    tmp_path, monkeypatch
):
    from sweeps.driver.tracking.store import resolve_tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # MLflow's default, made absolute
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"
    assert (
        resolve_tracking_uri(None, configured="sqlite:///sweep.db")
        == f"sqlite:///{tmp_path}/sweep.db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert resolve_tracking_uri(None, configured="sqlite:///sweep.db") == "http://127.0.0.1:5001"
    assert (
        resolve_tracking_uri("sqlite:///flag.db", configured="sqlite:///sweep.db")
        == f"sqlite:///{tmp_path}/flag.db"
    )


def test_a_missing_sqlite_store_is_created_by_no_check_and_refused_by_readers(tmp_path):
    uri = f"sqlite:///{tmp_path / 'missing.db'}"
    check_reachable(uri, create=True)  # `sweep run`: fine to make it, later
    with pytest.raises(StoreError, match="no MLflow store at .*missing.db"):
        check_reachable(uri, create=False)  # `sweep report`, `refine`, `ui`
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StoreError, match="is not a folder"):
        check_reachable(f"sqlite:///{tmp_path / 'no-folder' / 'x.db'}", create=True)


def test_a_store_that_answers_with_an_error_is_not_called_unreachable(tmp_path):
    (tmp_path / "not-a-database.db").write_text("this is no sqlite file")
    with pytest.raises(StoreError) as refused:
        check_reachable(f"sqlite:///{tmp_path / 'not-a-database.db'}", create=False)
    assert "answered with an error" in str(refused.value) and "cannot reach" not in str(
        refused.value
    )


# Each process waits for the start file, then opens the same new store and makes an experiment in
# it.
MAKE_AN_EXPERIMENT = """
import sys, time
from pathlib import Path
import mlflow.tracking  # imported before the start line: the race is on the store, not the import
from sweeps.driver.tracking.store import with_store
uri, start, name = sys.argv[1:]
(Path(start).parent / f"ready-{name}").touch()
while not Path(start).exists():
    time.sleep(0.005)
print(with_store(uri, lambda client: client.create_experiment(name)))
"""


@pytest.mark.slow
def test_two_processes_opening_one_new_sqlite_store_at_once_both_proceed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MAKE_AN_EXPERIMENT, uri, str(start), f"sweep-{index}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2:  # both imported MLflow and wait at the line
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
        time.sleep(0.01)
    start.touch()
    outcomes = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outcomes
    from mlflow.tracking import MlflowClient

    names = {experiment.name for experiment in MlflowClient(uri).search_experiments()}
    assert {"sweep-0", "sweep-1"} <= names
