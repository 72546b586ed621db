"""Which MLflow tracking store a command uses, by one rule; whether it answers; and making a new
one.

A sqlite store is only ever created by `sweep run` once everything else is checked
(bad input leaves no mlflow.db behind), with its setup serialised by a lock beside
the database: MLflow's table setup races when two processes open a new store at once.
Commands that only read (`report`, `refine`, `ui`) never create one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sweeps.credentials import CREDENTIALS_HINT, has_credentials
from sweeps.errors import SweepError, first_line

SQLITE_PREFIX = "sqlite:///"
SETUP_ATTEMPTS = 5  # a store another process is setting up answers within a few tries
T = TypeVar("T")


class StoreError(SweepError):
    """A tracking store that cannot be used; the message says which and what failed."""


def resolve_tracking_uri(
    flag: str | None = None,
    *,
    configured: str | None = None,
    configured_in: str = "mlflow.tracking_uri",
) -> str:
    """The tracking URI for every command: the --tracking-uri flag, then $MLFLOW_TRACKING_URI,
    then the sweep's own (its file's mlflow.tracking_uri, or the journal of a sweep that
    ran), then MLflow's default (sqlite:///mlflow.db in the current folder). A relative
    sqlite path is made absolute, so `sweep resume` finds the same store from any folder.

    Credentials are taken from the environment only: a URI holding them anywhere else is
    refused (StoreError, without repeating it)."""
    check_sources(flag, configured=configured, configured_in=configured_in)
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or configured
    if not uri:
        import mlflow

        uri = mlflow.get_tracking_uri()
    return absolute_uri(uri)


def check_sources(
    flag: str | None, *, configured: str | None, configured_in: str = "mlflow.tracking_uri"
) -> None:
    """Refuse credentials in the flag or the sweep's own URI (cheap: resolving may import
    MLflow)."""
    check_no_credentials(flag, where="--tracking-uri")
    check_no_credentials(configured, where=configured_in)


def check_no_credentials(uri: str | None, *, where: str) -> None:
    if uri and has_credentials(uri):
        raise StoreError(f"{where}: {CREDENTIALS_HINT}")


def absolute_uri(tracking_uri: str) -> str:
    if tracking_uri.startswith(SQLITE_PREFIX) and not tracking_uri[len(SQLITE_PREFIX) :].startswith(
        "/"
    ):
        return SQLITE_PREFIX + os.path.abspath(tracking_uri[len(SQLITE_PREFIX) :])
    return tracking_uri


def sqlite_path(tracking_uri: str) -> Path | None:
    return (
        Path(tracking_uri[len(SQLITE_PREFIX) :]) if tracking_uri.startswith(SQLITE_PREFIX) else None
    )


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


def check_reachable(tracking_uri: str, *, create: bool) -> None:
    """Raise StoreError unless the store answers. A sqlite store that does not exist yet
    passes when `create` (its folder must take it; nothing is written now) and is refused
    when not (a reading command must not leave an empty database behind)."""
    database = sqlite_path(tracking_uri)
    if database is not None and not database.exists():
        if not create:
            raise StoreError(
                f"no MLflow store at {database} (no such file); give the store the sweep ran "
                "with: --tracking-uri URI"
            )
        if not database.parent.is_dir():
            raise StoreError(
                f"cannot create the MLflow store at {database}: {database.parent} is not a folder"
            )
        if not os.access(database.parent, os.W_OK):
            raise StoreError(
                f"cannot create the MLflow store at {database}: {database.parent} is not writable"
            )
        return
    with_store(tracking_uri, lambda client: client.search_experiments(max_results=1))


def with_store(tracking_uri: str, use: Callable[[Any], T]) -> T:
    """`use(client)` on the store, creating a new sqlite store's tables under the setup lock,
    retried while another process is setting it up; StoreError says what failed."""
    from mlflow.tracking import MlflowClient

    quiet_mlflow()
    for attempt in range(1, SETUP_ATTEMPTS + 1):
        try:
            with setup_lock(tracking_uri):
                return use(MlflowClient(tracking_uri))
        except Exception as error:  # MLflow raises many types; each is named below
            if attempt < SETUP_ATTEMPTS and _being_set_up(error):
                time.sleep(0.2 * attempt)
                continue
            raise StoreError(describe_failure(tracking_uri, error)) from None
    raise AssertionError("unreachable")


def describe_failure(tracking_uri: str, error: BaseException) -> str:
    """What went wrong with the store, in one line: unreachable only when it did not answer."""
    if is_unreachable(error):
        return f"cannot reach the MLflow tracking store at {tracking_uri}: {first_line(error)}"
    return (
        f"the MLflow tracking store at {tracking_uri} answered with an error: "
        f"{type(error).__name__}: {first_line(error)}"
    )


def is_unreachable(error: BaseException) -> bool:
    """A store that did not answer (refused, timed out, unknown host), as against one that refused a
    request."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return (
            error.error_code in ("TEMPORARILY_UNAVAILABLE",)
            or "Max retries exceeded" in str(error)
            or "Connection" in str(error)
        )
    # requests' and urllib3's connection errors, without importing either here.
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(
        names
        & {
            "ConnectionError",
            "Timeout",
            "TimeoutError",
            "NewConnectionError",
            "MaxRetryError",
            "ConnectionRefusedError",
        }
    )


def _being_set_up(error: BaseException) -> bool:
    """sqlite's answers while another process creates or migrates the same new store."""
    text = str(error).lower()
    return any(
        sign in text
        for sign in (
            "already exists",
            "alembic_version",
            "duplicate column",
            "database is locked",
            "no such table",
        )
    )


@contextlib.contextmanager
def setup_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock on a sqlite store's folder while a client opens it (and may create its
    tables): other sweep processes wait rather than race MLflow's table setup. Other stores:
    nothing."""
    database = sqlite_path(tracking_uri)
    if database is None or not database.parent.is_dir():
        yield
        return
    folder = os.open(database.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock
