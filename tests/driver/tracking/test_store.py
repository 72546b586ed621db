"""The tracking store: which one a command uses, and whether it answers."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_a_new_sqlite_store_is_made_without_mlflows_announcements(tmp_path):
    # A person's first sweep creates the store; MLflow logs two INFO lines when it does.
    code = f"from sweeps.driver.tracking.store import check_reachable; check_reachable('sqlite:///{tmp_path / 'new.db'}')"
    made = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "new.db").exists()
    assert made.stderr == ""


def test_one_rule_picks_the_tracking_uri_flag_then_environment_then_sweep_then_default(tmp_path, monkeypatch):
    from sweeps.driver.tracking.store import resolve_tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"  # MLflow's default, made absolute
    assert resolve_tracking_uri(None, configured="sqlite:///sweep.db") == f"sqlite:///{tmp_path}/sweep.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5001")
    assert resolve_tracking_uri(None, configured="sqlite:///sweep.db") == "http://127.0.0.1:5001"
    assert resolve_tracking_uri("sqlite:///flag.db", configured="sqlite:///sweep.db") == f"sqlite:///{tmp_path}/flag.db"
