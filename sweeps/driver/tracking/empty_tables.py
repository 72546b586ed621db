"""MLflow's tables for a new sqlite store, made once per MLflow version and copied after.

MLflow makes a new sqlite store's tables by running its migrations, more than a second
of CPU that, on a small machine, competes with Ray's start-up (bench/RESULTS.md). The
migrations come out the same for every store of one MLflow version, so their result is
kept, with no rows of the user's in it, in the user's cache folder; a new store starts
as a copy of it. MLflow checks the copy's schema when it opens it, and adds its default
experiment then (whose artifact folder depends on the working folder, so the copy
cannot hold it).

The kept file is trusted as ssh trusts its keys: only a regular file the user owns, that
no one else can write, in a folder no one else can write. Anyone who can change it could
change what every new store starts with.

The MLflow internals used, each checked against MLFLOW_CHECKED_VERSION by
tests/driver/tracking/test_new_store.py: mlflow.store.db.utils._initialize_tables (what
MLflow's own store calls on an empty database) and _get_latest_schema_revision. Without
the first, or without a usable cache folder, MLflow makes every new store's tables itself.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

MLFLOW_CHECKED_VERSION = "3.17.2"
CACHE_FOLDER = "sweep"  # under $XDG_CACHE_HOME, or ~/.cache
ABANDONED_AFTER_S = 3600  # a half-made file this old was left by a process that died making it


def empty_tables_file() -> Path | None:
    """The file of MLflow's empty tables for the installed MLflow, made now if missing; None
    when none can be trusted or kept (no usable cache folder, or no MLflow internal to make it)."""
    try:
        return _kept_or_made()
    except OSError:  # a cache folder that turns unreadable midway: MLflow makes the store's tables itself
        return None


def _kept_or_made() -> Path | None:
    kept = kept_tables_path()
    if kept is None or not _folder_is_private(kept.parent):
        return None
    if _trusted(kept) and _latest_schema(kept):
        return kept
    initialize_tables = mlflow_initializer()
    if initialize_tables is None or kept.is_dir():
        return None
    _remove_abandoned(kept)
    try:
        handle, name = tempfile.mkstemp(dir=kept.parent, prefix=f".{kept.name}.making-")
    except OSError:
        return None
    os.close(handle)
    making = Path(name)
    try:
        _make_tables(making, initialize_tables)
        os.replace(making, kept)  # whole or not at all: another sweep may be copying it
    except Exception:  # a full disk, MLflow refusing: MLflow makes the store's tables itself
        _remove(making)
        return None
    return kept


def forget(kept: Path) -> None:
    """Drop a kept file MLflow refused (another MLflow's schema, rows in it): the next store makes it afresh."""
    _remove(kept)


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


def mlflow_latest_revision() -> str | None:
    try:
        from mlflow.store.db.utils import _get_latest_schema_revision

        return _get_latest_schema_revision()
    except Exception:  # alembic raises its own types: MLflow checks the copy as it opens it anyway
        return None


def _folder_is_private(folder: Path) -> bool:
    """The cache folder, made only-ours if missing; False if it is not a folder we own that no one else can write."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return _ours_alone(folder.lstat(), stat.S_ISDIR)
    except OSError:
        return False


def _trusted(kept: Path) -> bool:
    try:
        return _ours_alone(kept.lstat(), stat.S_ISREG)  # lstat: a symlink is not trusted, whatever it points to
    except OSError:
        return False


def _ours_alone(status: os.stat_result, is_kind: Callable[[int], bool]) -> bool:
    return is_kind(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _latest_schema(path: Path) -> bool:
    """Whether the file records MLflow's latest migration (any migration, where MLflow cannot say which is latest)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as database:
            versions = database.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return False
    latest = mlflow_latest_revision()
    return len(versions) == 1 and (latest is None or versions[0][0] == latest)


def _make_tables(path: Path, initialize_tables: Callable[[Any], None]) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        initialize_tables(engine)
    finally:
        engine.dispose()


def _remove_abandoned(kept: Path) -> None:
    """Half-made files of processes that died making them (a second Ctrl-C, a kill)."""
    cutoff = time.time() - ABANDONED_AFTER_S
    for leftover in kept.parent.glob(f".{kept.name}.making-*"):
        with contextlib.suppress(OSError):
            if leftover.lstat().st_mtime < cutoff:
                leftover.unlink()


def _remove(path: Path) -> None:
    for leftover in (path, Path(f"{path}-journal")):
        with contextlib.suppress(OSError):
            leftover.unlink()
