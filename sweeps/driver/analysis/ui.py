"""What `sweep ui` serves: the MLflow UI on a sqlite store, and a link to each sweep's runs
table."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from sweeps.driver.tracking.experiment_view import experiment_url, sweep_experiments
from sweeps.driver.tracking.store import (
    SQLITE_PREFIX,
    StoreError,
    check_reachable,
    resolve_tracking_uri,
    sqlite_path,
)


@dataclass
class UiServer:
    tracking_uri: str
    command: list[str]  # the `mlflow server` the command becomes
    links: list[str] = field(default_factory=list)  # "name: url" for each experiment
    note: str | None = None  # why there are no links, when listing failed


def ui_server(tracking_uri: str | None, *, host: str, port: int, workers: int) -> UiServer:
    """The server for the store the one rule picks; StoreError for a tracking server (it has its
    own UI) or a store that does not answer. The store's tables are made, under its setup lock,
    before the server starts."""
    uri = resolve_tracking_uri(tracking_uri)
    if sqlite_path(uri) is None:
        raise StoreError(
            f"{uri} is a tracking server already: open it in a browser (`sweep ui` serves a "
            "sqlite store)"
        )
    check_reachable(uri, create=False)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    command += ["--host", host, "--port", str(port), "--workers", str(workers)]
    server = UiServer(tracking_uri=uri, command=command)
    base_url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"
    if uri.startswith(SQLITE_PREFIX) and not Path(uri[len(SQLITE_PREFIX) :]).exists():
        return server  # no store yet: nothing to list (and reading would create one)
    try:
        experiments = sweep_experiments(uri)
    except Exception as error:  # the server starts all the same; the links are a convenience
        server.note = f"could not list the experiments: {error}"
        return server
    server.links = [
        f"{name}: {experiment_url(base_url, experiment_id, shared_view=has_view)}"
        for name, experiment_id, has_view in experiments
    ]
    return server
