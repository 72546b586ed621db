"""A new sqlite store made while Ray starts, and put in place only when the sweep opens.

MLflow sets up a new sqlite store's tables in about 2 seconds (its migrations), which a
sweep's first run used to spend after Ray was up, one thing after the other. Here the
tables are made in a file of their own beside the store (`.mlflow.db.setup-PID-*`) while
Ray starts, and linked to the store's name when the sweep opens its parent run: a
sweep refused or interrupted before that leaves no store behind, as before. If another
process made the store meanwhile, its store is used and ours is thrown away.

The tables themselves start as a copy of MLflow's empty tables, kept once per MLflow
version (tracking/empty_tables.py): MLflow's migrations are then run once, not by every
new store.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from sweeps.driver.tracking import empty_tables
from sweeps.driver.tracking.store import (
    SQLITE_PREFIX,
    quiet_mlflow,
    setup_lock,
    sqlite_path,
)


class NotEmpty(Exception):
    """A new store's setup file held experiments before MLflow opened it: not MLflow's empty tables."""


class NewStore:
    """The setup of the sweep's store, when it is a sqlite store that does not exist yet.
    Made empty first, as a context manager on the main thread whose exit discards what was
    not installed; prepared (on the thread that prepares the sweep) once the URI is known."""

    def __init__(self) -> None:
        self.tracking_uri = ""
        self.database: Path | None = None
        self.setup: Path | None = None

    def prepare(self, tracking_uri: str) -> None:
        """Make the tables in the setup file (MLflow's own setup, on a file only this process knows).
        The artifact root MLflow records for its default experiment depends on the working
        folder, not on the file's name: the same as if the store were made in place."""
        self.tracking_uri = tracking_uri
        database = sqlite_path(tracking_uri)
        if database is None or database.exists():
            return
        self.database = database
        quiet_mlflow()
        kept = empty_tables.empty_tables_file()
        if kept is not None and self._started_from(kept):
            return
        self.setup = self._new_setup_file()
        self._open_setup()

    def _started_from(self, kept: Path) -> bool:
        """Whether the setup file, a copy of the kept empty tables, opened as a new store. A copy
        MLflow refused, or one that held anything, drops the kept file: what failed was its content."""
        self.setup = self._new_setup_file()
        try:
            shutil.copyfile(kept, self.setup)
        except OSError:  # the store's folder refused the copy, not the kept file's fault
            self.discard()
            return False
        try:
            self._open_copy_of_empty_tables()
        except Exception:  # MLflow raises many types
            empty_tables.forget(kept)
            self.discard()
            return False
        return True

    def _new_setup_file(self) -> Path:
        """A name no earlier setup of this process used: MLflow keeps the stores it opened, by URI."""
        return self.database.with_name(f".{self.database.name}.setup-{os.getpid()}-{secrets.token_hex(4)}")

    def _open_setup(self) -> list[Any]:
        """Open the setup file as MLflow opens a new store: it makes the tables the file lacks,
        checks their schema and adds its default experiment. Every experiment it then holds."""
        from mlflow.entities import ViewType
        from mlflow.tracking import MlflowClient

        return MlflowClient(SQLITE_PREFIX + str(self.setup)).search_experiments(view_type=ViewType.ALL, max_results=2)

    def _open_copy_of_empty_tables(self) -> None:
        """_open_setup, refusing a copy that held anything: its one experiment must be the default one MLflow adds now."""
        opened_at = int(time.time() * 1000)
        experiments = self._open_setup()
        if [(experiment.experiment_id, experiment.creation_time >= opened_at) for experiment in experiments] != [("0", True)]:
            raise NotEmpty(f"{self.setup} held experiments before MLflow opened it")

    def install(self) -> None:
        """Give the store its name, unless another process has made it meanwhile. The setup
        file may still be open in MLflow's connection pool: the link keeps what it points to."""
        if self.setup is None or not self.setup.exists():
            return
        with setup_lock(self.tracking_uri):
            try:
                # A link never replaces a file: a store made meanwhile by a process that does not
                # take our lock (`mlflow ui`, a notebook) is kept, where a rename would clobber it.
                os.link(self.setup, self.database)
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links
                if not self.database.exists():
                    os.rename(self.setup, self.database)
            self.discard()

    def __enter__(self) -> NewStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()  # a store made for a sweep that never opened (after install(), nothing is left)

    def discard(self) -> None:
        if self.setup is not None:
            for leftover in (self.setup, Path(f"{self.setup}-journal")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
