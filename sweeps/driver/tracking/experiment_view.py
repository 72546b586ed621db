"""How the MLflow UI opens on a sweep: on its runs table, with the columns a person compares trials
by.

Checked against MLflow 3.17.2's UI in headless Chromium (tests/e2e/test_mlflow_ui.py):
- An experiment's page opens on its GenAI overview (traces) unless the URL says
  `workflowType=machine_learning`, which lands on the runs table. The experiment tag
  `mlflow.experimentKind` marks it as model training too, but alone did not change
  the landing page in a fresh browser.
- The runs table shows Source, Models and Dataset until a person picks columns. A
  saved view is an experiment tag `mlflow.sharedViewState.<key>` holding
  `{name, createdAt, updatedAt, state}`, `state` the table's settings as a JSON string;
  the UI lists it under Views, and a URL with `viewStateShareKey=<key>` opens with it.
  Each sweep adds its varied params and its metric to the experiment's view.
- The link goes to the runs tab itself (`/experiments/<id>/runs`): the experiment's
  root redirects there and drops the view's key on the way.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "sweep"
VIEW_NAME = "sweep: varied params and metric"  # as the UI's Views menu lists it
UI_PORT = 5000  # `sweep ui`'s default
ALWAYS_SHOWN = ("tags.`sweep.status`",)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


def artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """Where a new experiment's artifacts go: `mlruns/<experiment>/` beside a sqlite store's
    database (MLflow's default is ./mlruns of whatever folder the command runs in); None
    for other stores, which decide for themselves."""
    from sweeps.driver.tracking.store import SQLITE_PREFIX

    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    database = tracking_uri[len(SQLITE_PREFIX) :]
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", experiment_name)
    return "file://" + os.path.join(os.path.dirname(os.path.abspath(database)), "mlruns", folder)


def table_columns(sampled: Iterable[str], metric: str) -> list[str]:
    """The runs table's columns for a sweep: its metric (the parent run's best too), then the varied
    params."""
    return [
        f"metrics.`{metric}`",
        f"metrics.`best_{metric}`",
        *(f"params.`{name}`" for name in sampled),
        *ALWAYS_SHOWN,
    ]


def mark_sweep_experiment(client: MlflowClient, experiment_id: str, *, columns: list[str]) -> None:
    """Tag the experiment as model training and add `columns` to its shared runs-table view."""
    tags = client.get_experiment(experiment_id).tags
    if tags.get(EXPERIMENT_KIND_TAG) != MODEL_TRAINING:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
    envelope = _saved_view(tags.get(SHARED_VIEW_PREFIX + VIEW_KEY))
    state = json.loads(envelope["state"])
    shown = list(state.get("selectedColumns") or [])
    merged = shown + [column for column in columns if column not in shown]
    if merged != shown:
        envelope |= {
            "updatedAt": int(time.time() * 1000),
            "state": json.dumps(state | {"selectedColumns": merged}),
        }
        client.set_experiment_tag(
            experiment_id, SHARED_VIEW_PREFIX + VIEW_KEY, json.dumps(envelope)
        )


def _saved_view(text: str | None) -> dict[str, Any]:
    """The UI's saved-view envelope: {name, createdAt, updatedAt, state: the view's JSON as a
    string}."""
    try:
        envelope = json.loads(text or "")
        json.loads(envelope["state"])
        return envelope
    except (ValueError, KeyError, TypeError):  # none yet, or not one we wrote
        now = int(time.time() * 1000)
        return {"name": VIEW_NAME, "createdAt": now, "updatedAt": now, "state": json.dumps({})}


def ui_base_url(tracking_uri: str, *, host: str = "127.0.0.1", port: int = UI_PORT) -> str:
    """Where a person opens the UI on this store: the tracking server itself, or what `sweep ui`
    serves."""
    if urlsplit(tracking_uri).scheme in ("http", "https"):
        return tracking_uri.rstrip("/")
    return f"http://{host}:{port}"


def experiment_url(base_url: str, experiment_id: str, *, shared_view: bool = True) -> str:
    """The experiment's runs table (not the GenAI overview), with the sweep's columns."""
    url = f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return f"{url}&viewStateShareKey={VIEW_KEY}" if shared_view else url


def sweep_experiments(tracking_uri: str) -> list[tuple[str, str, bool]]:
    """(name, id, has the sweep's view) of the store's experiments that hold runs, newest first."""
    from mlflow.tracking import MlflowClient

    from sweeps.driver.tracking.store import quiet_mlflow

    quiet_mlflow()
    client = MlflowClient(tracking_uri)
    found = []
    for experiment in client.search_experiments(order_by=["last_update_time DESC"]):
        if experiment.experiment_id == "0" and not client.search_runs(["0"], max_results=1):
            continue  # MLflow's empty Default experiment
        found.append(
            (
                experiment.name,
                experiment.experiment_id,
                SHARED_VIEW_PREFIX + VIEW_KEY in experiment.tags,
            )
        )
    return found
