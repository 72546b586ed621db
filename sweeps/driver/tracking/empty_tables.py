"""MLflow's tables for a new sqlite store, made once per MLflow version and copied after.

MLflow makes a new sqlite store's tables by running its migrations, more than a second
of CPU that, on a small machine, competes with Ray's start-up (bench/RESULTS.md). The
migrations come out the same for every store of one MLflow version, so their result is
kept, with no rows in it, in the user's cache folder; a new store starts as a copy of it.
MLflow checks the copy's schema when it opens it, and adds its default experiment then
(whose artifact folder depends on the working folder, so the copy cannot hold it).

The one MLflow internal used: mlflow.store.db.utils._initialize_tables, the function
MLflow's own store calls on an empty database (checked against MLFLOW_CHECKED_VERSION by
tests/driver/tracking/test_new_store.py). Without it, or without a writable cache
folder, MLflow makes every new store's tables itself, as before.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable

MLFLOW_CHECKED_VERSION = "3.17.2"
CACHE_FOLDER = "sweep"  # under $XDG_CACHE_HOME, or ~/.cache


def empty_tables_file() -> Path | None:
    """The file of MLflow's empty tables for the installed MLflow, made now if missing; None
    when it cannot be kept (no cache folder, no writable one, or no MLflow internal to make it)."""
    kept = kept_tables_path()
    if kept is None:
        return None
    if kept.is_file() and _migrated(kept):
        return kept
    initialize_tables = mlflow_initializer()
    if initialize_tables is None:
        return None
    making = kept.with_name(f".{kept.name}.making-{os.getpid()}")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        _make_tables(making, initialize_tables)
        os.replace(making, kept)  # whole or not at all: another sweep may be reading it
    except Exception:  # an unwritable cache, a full disk, MLflow refusing: MLflow makes the store's tables itself
        with contextlib.suppress(OSError):
            making.unlink()
        return None
    return kept


def forget(kept: Path) -> None:
    """Drop a kept file MLflow refused (another MLflow's schema, a damaged file): the next store makes it afresh."""
    with contextlib.suppress(OSError):
        kept.unlink()


def kept_tables_path() -> Path | None:
    """Where the installed MLflow's empty tables are kept; None without an absolute cache
    folder (a relative $XDG_CACHE_HOME is ignored, as the XDG rules say, and a home that
    cannot be found must not turn into a folder `~` in the working folder), or one whose
    name a sqlite URL would misread."""
    import mlflow

    cache = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(cache):
        cache = os.path.join(os.path.expanduser("~"), ".cache")
    kept = Path(cache) / CACHE_FOLDER / f"mlflow-{mlflow.__version__}-empty-store.db"
    if not kept.is_absolute() or any(sign in str(kept) for sign in "?#%"):
        return None
    return kept


def mlflow_initializer() -> Callable[[Any], None] | None:
    try:
        from mlflow.store.db.utils import _initialize_tables
    except ImportError:
        return None
    return _initialize_tables


def _migrated(path: Path) -> bool:
    """Whether the file records a migration (MLflow checks, as it opens the copy, that it is its latest)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as database:
            return database.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    except sqlite3.Error:
        return False


def _make_tables(path: Path, initialize_tables: Callable[[Any], None]) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        initialize_tables(engine)
    finally:
        engine.dispose()
