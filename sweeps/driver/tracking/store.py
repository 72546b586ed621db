"""Which MLflow tracking store a command uses, by one rule, and whether it answers."""
from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

from sweeps.errors import SweepError, first_line

SQLITE_PREFIX = "sqlite:///"


class StoreError(SweepError):
    """A tracking store that cannot be used; the message says which and why."""


def resolve_tracking_uri(flag: str | None = None, *, configured: str | None = None) -> str:
    """The tracking URI for every command: the --tracking-uri flag, then $MLFLOW_TRACKING_URI,
    then the sweep's own (its file's mlflow.tracking_uri, or the journal of a sweep that
    ran), then MLflow's default (sqlite:///mlflow.db in the current folder). A relative
    sqlite path is made absolute, so `sweep resume` finds the same store from any folder."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or configured
    if not uri:
        import mlflow

        uri = mlflow.get_tracking_uri()
    return absolute_uri(uri)


def check_no_credentials(uri: str | None, *, where: str) -> None:
    """Refuse a URI with a user name or password in it, without repeating it: URIs are
    printed, stored in the journal and copied into manifests; credentials belong in
    the environment."""
    if uri and has_credentials(uri):
        raise StoreError(f"{where}: {CREDENTIALS_HINT}")


def has_credentials(uri: str) -> bool:
    try:
        return "@" in urlsplit(uri).netloc
    except ValueError:  # urlsplit refuses it, but it may still hold a password
        return "@" in uri


CREDENTIALS_HINT = (
    "credentials do not belong in the URI: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
    "(or MLFLOW_TRACKING_TOKEN) in the environment instead"
)


def absolute_uri(tracking_uri: str) -> str:
    if tracking_uri.startswith(SQLITE_PREFIX) and not tracking_uri[len(SQLITE_PREFIX):].startswith("/"):
        return SQLITE_PREFIX + os.path.abspath(tracking_uri[len(SQLITE_PREFIX):])
    return tracking_uri


def quiet_mlflow() -> None:
    """MLflow's defaults suit a notebook, not a sweep: it retries an unreachable server
    for minutes (the writer retries and spools instead), prints a URL for every
    finished run, and announces the tables it creates in a new sqlite store on a
    person's first sweep. The user's own settings win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    database_setup = logging.getLogger("mlflow.store.db.utils")
    if database_setup.level == logging.NOTSET:
        database_setup.setLevel(logging.WARNING)


def check_reachable(tracking_uri: str) -> None:
    """Raise StoreError if the store does not answer; a read, so a failed probe leaves nothing behind."""
    from mlflow.tracking import MlflowClient

    quiet_mlflow()
    try:
        MlflowClient(tracking_uri).search_experiments(max_results=1)
    except Exception as error:  # MLflow raises many types for a store it cannot reach
        raise StoreError(f"cannot reach the MLflow tracking store at {tracking_uri}: {first_line(error)}") from None
