"""A new sqlite store's tables are made beside it while Ray starts and take its name only when the sweep opens."""
from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from sweeps.driver.tracking import empty_tables
from sweeps.driver.tracking.new_store import NewStore
from tests.conftest import REPO


def uri(path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """The kept tables' folder, this test's own: never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder / "sweep"


def test_a_new_store_is_made_aside_and_named_when_installed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "mlflow.db"
    new_store = NewStore()
    new_store.prepare(uri(database))
    (setup,) = tmp_path.iterdir()
    assert not database.exists() and setup.name.startswith(f".mlflow.db.setup-{os.getpid()}-")
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


# MLflow's empty tables, kept once per MLflow version (sweeps/driver/tracking/empty_tables.py).

MIGRATIONS_LOG = "mlflow.store.db.utils"  # MLflow says "Creating initial MLflow database tables..." as it migrates


def make_store(folder) -> MlflowClient:
    folder.mkdir(parents=True, exist_ok=True)
    new_store = NewStore()
    new_store.prepare(uri(folder / "mlflow.db"))
    new_store.install()
    assert sorted(path.name for path in folder.iterdir()) == ["mlflow.db"]  # no setup file left behind
    return MlflowClient(uri(folder / "mlflow.db"))


def rows(path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]




@pytest.mark.parametrize("name, reach", [("_initialize_tables", empty_tables.mlflow_initializer), ("_get_latest_schema_revision", empty_tables.mlflow_latest_revision)])
def test_the_mlflow_internals_the_kept_tables_need_are_still_there(name, reach):
    import mlflow

    assert reach() is not None, (
        f"MLflow {mlflow.__version__} no longer has mlflow.store.db.utils.{name} "
        f"(checked against {empty_tables.MLFLOW_CHECKED_VERSION}): see sweeps/driver/tracking/empty_tables.py"
    )


class Migrations(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "Creating initial" in record.getMessage()


@pytest.fixture
def migrations():
    """How many times MLflow ran its migrations (its own logger does not reach pytest's capture)."""
    logger, handler = logging.getLogger(MIGRATIONS_LOG), Migrations()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_migrations_run_once_and_later_stores_start_from_their_empty_tables(tmp_path, cache, migrations, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = make_store(tmp_path / "first")
    (kept,) = cache.iterdir()
    assert rows(kept, "experiments") == 0 and rows(kept, "runs") == 0  # the tables only
    assert migrations.count == 1
    second = make_store(tmp_path / "second")
    assert migrations.count == 1
    for client in (first, second):
        (default,) = client.search_experiments()
        assert (default.experiment_id, default.artifact_location) == ("0", str(tmp_path / "mlruns" / "0"))  # the working folder's
        client.create_run(client.create_experiment("mine"))  # the store takes writes
    assert rows(kept, "experiments") == 0  # what the stores hold is theirs alone


def latest_revision(path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return version[0]


@pytest.mark.parametrize(
    "spoil, reaches_mlflow",
    [
        pytest.param(lambda kept: kept.write_bytes(b"not a database" * 100), False, id="damaged"),
        pytest.param(lambda kept: kept.write_bytes(b""), False, id="empty"),
        pytest.param(lambda kept: _execute(kept, "UPDATE alembic_version SET version_num = 'from-another-mlflow'"), False, id="another-schema"),
        # The schema is right, so MLflow opens the copy; what it finds there is refused.
        pytest.param(lambda kept: MlflowClient(uri(kept)).create_experiment("someone else's"), True, id="holds-an-experiment"),
    ],
)
def test_a_kept_file_that_is_not_mlflows_empty_tables_is_made_afresh(tmp_path, cache, migrations, spoil, reaches_mlflow):
    make_store(tmp_path / "first")
    (kept,) = cache.iterdir()
    spoil(kept)
    before = migrations.count
    client = make_store(tmp_path / "second")
    assert [experiment.name for experiment in client.search_experiments()] == ["Default"]
    # One migration: the kept file remade before the copy, or, once MLflow refused the copy, the store's own tables.
    assert migrations.count - before == 1
    make_store(tmp_path / "third")
    # The refused file was dropped, so the third store remakes it; a file remade before the copy serves it as it is.
    assert migrations.count - before == (2 if reaches_mlflow else 1)
    assert rows(kept, "experiments") == 0 and latest_revision(kept) == empty_tables.mlflow_latest_revision()


def _plant_symlink(kept):
    elsewhere = kept.with_name("elsewhere.db")
    kept.rename(elsewhere)
    kept.symlink_to(elsewhere)


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param(
            lambda kept: os.chown(kept, 12345, 12345),
            id="another-users",
            marks=pytest.mark.skipif(os.getuid() != 0, reason="handing a file to another user takes root"),
        ),
        pytest.param(lambda kept: kept.chmod(0o664), id="others-can-write-it"),
        pytest.param(_plant_symlink, id="a-symlink"),
    ],
)
def test_a_kept_file_someone_else_could_have_written_is_not_used(tmp_path, cache, migrations, plant):
    make_store(tmp_path / "first")
    kept = empty_tables.kept_tables_path()
    plant(kept)
    before = migrations.count
    make_store(tmp_path / "second")
    assert migrations.count - before == 1  # made afresh, as ours alone
    status = kept.lstat()
    assert stat.S_ISREG(status.st_mode) and status.st_uid == os.getuid() and not status.st_mode & 0o022


def test_a_cache_folder_others_can_write_is_not_used(tmp_path, cache, migrations):
    cache.mkdir(parents=True)
    cache.chmod(0o777)
    for name in ("first", "second"):
        make_store(tmp_path / name)
    assert migrations.count == 2 and list(cache.iterdir()) == []


def test_a_new_cache_folder_is_the_users_alone(tmp_path, cache):
    make_store(tmp_path / "first")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_half_made_files_of_processes_that_died_are_cleared_and_others_kept(tmp_path, cache):
    cache.mkdir(parents=True, mode=0o700)
    name = empty_tables.kept_tables_path().name
    abandoned, in_the_making = cache / f".{name}.making-dead", cache / f".{name}.making-alive"
    for leftover in (abandoned, in_the_making):
        leftover.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(abandoned, (two_hours_ago, two_hours_ago))
    make_store(tmp_path / "first")
    assert sorted(path.name for path in cache.iterdir()) == sorted([name, in_the_making.name])


def test_an_unusable_cache_folder_still_gives_a_store(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    client = make_store(tmp_path / "store")
    assert [experiment.name for experiment in client.search_experiments()] == ["Default"]
    assert not_a_folder.read_text() == "a file where the cache folder should be"


@pytest.mark.parametrize(
    "environment",
    [
        # A relative $XDG_CACHE_HOME is ignored (the XDG rules), and this home is a file, not a folder.
        pytest.param({"XDG_CACHE_HOME": "relative/cache", "HOME": "{tmp}/home-is-a-file"}, id="relative-xdg-and-a-home-that-is-a-file"),
        pytest.param({"XDG_CACHE_HOME": "{tmp}/odd?name#cache"}, id="a-name-a-sqlite-url-misreads"),
    ],
)
def test_without_a_usable_cache_folder_mlflow_makes_the_tables_and_nothing_lands_in_the_working_folder(tmp_path, monkeypatch, environment):
    (tmp_path / "home-is-a-file").write_text("")
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    working = tmp_path / "working"
    working.mkdir()
    monkeypatch.chdir(working)
    client = make_store(working / "store")
    assert [experiment.name for experiment in client.search_experiments()] == ["Default"]
    assert [path.name for path in working.iterdir()] == ["store"]  # no "relative" or "~" folder made here
    assert sorted(path.name for path in tmp_path.iterdir()) == ["home-is-a-file", "working"]


MAKE_A_STORE = """
import sys
from sweeps.driver.tracking.new_store import NewStore
new_store = NewStore()
new_store.prepare("sqlite:///" + sys.argv[1])
new_store.install()
"""


@pytest.mark.parametrize("round_", range(2))
def test_two_sweeps_making_the_first_store_at_once_both_get_one(tmp_path, cache, round_):
    env = os.environ | {"PYTHONPATH": str(REPO)}
    stores = [tmp_path / f"store-{index}" / "mlflow.db" for index in range(2)]
    for store in stores:
        store.parent.mkdir()
    processes = [subprocess.Popen([sys.executable, "-c", MAKE_A_STORE, str(store)], env=env, stderr=subprocess.PIPE, text=True) for store in stores]
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors[-2000:]
    for store in stores:
        assert [experiment.name for experiment in MlflowClient(uri(store)).search_experiments()] == ["Default"]
    assert [path.name for path in cache.iterdir()] == [empty_tables.kept_tables_path().name]  # nothing half-made left
    assert rows(next(cache.iterdir()), "experiments") == 0


def _execute(path, statement: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute(statement)
        connection.commit()
