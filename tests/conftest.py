"""Shared fixtures and helpers: one real local Ray cluster per test session, fresh MLflow
sqlite stores, real servers on 127.0.0.1, and the small things many test files need."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent

# The session's cluster comes from `ray start` with token authentication; Ray reads
# these when it is imported, so they are set before any test module imports it. The
# suite brings its own token: `ray start` refuses token mode on a machine that has no
# ~/.ray/auth_token yet (a fresh CI machine), and the tests leave the user's home alone.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
SWEEP = [sys.executable, "-m", "cli"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuse",
        choices=["off", "auto"],
        default=None,
        help="train.fuse for every sweep file a test writes that does not set it (default: the "
        "schema's default)",
    )


FUSE: str | None = None  # --fuse


# The fast set (-m "not slow") starts neither Ray nor a `sweep` subprocess: these are slow-only.
SLOW_ONLY_FIXTURES = {"ray_address", "ray_connected"}
CURRENT_TEST_IS_SLOW = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced = [
        item.nodeid
        for item in items
        if SLOW_ONLY_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("slow") is None
    ]
    if misplaced:
        raise pytest.UsageError(f"tests that start Ray must be marked slow: {misplaced}")


@pytest.fixture(autouse=True)
def _note_whether_slow(request: pytest.FixtureRequest) -> None:
    global CURRENT_TEST_IS_SLOW
    CURRENT_TEST_IS_SLOW = request.node.get_closest_marker("slow") is not None


def assert_slow_test(what: str) -> None:
    assert CURRENT_TEST_IS_SLOW, f"a test that {what} must be marked slow"


def pytest_configure(config: pytest.Config) -> None:
    global FUSE
    FUSE = config.getoption("--fuse")


def write_sweep(folder: Path, sweep: dict, name: str = "search.yaml") -> Path:
    """A sweep file in `folder`, as a person would write it (with --fuse's train.fuse unless it sets
    its own)."""
    if FUSE is not None and "fuse" not in sweep.get("train", {}):
        sweep = {**sweep, "train": {**sweep.get("train", {}), "fuse": FUSE}}
    path = folder / name
    path.write_text(yaml.safe_dump(sweep))
    return path


def invoke(*args: str):
    """The `sweep` command in this process (click's CliRunner), as `sweep ARGS`."""
    from click.testing import CliRunner

    from cli import cli

    return CliRunner().invoke(cli, list(args))


def digits(preprocess: str = "per_channel_mean"):
    """scikit-learn's digits, split and preprocessed as the default sweep does, as CPU tensors."""
    import torch

    from sweeps.trial.data import DataSpec, load_split

    return load_split(DataSpec("digits"), val_fraction=0.2, preprocess=preprocess, seed=0).to(
        torch.device("cpu")
    )


def trial_settings(sweep: dict | None = None, **fields):
    """The TrialSettings a sweep file gives its trials: `sweep`'s sections over the schema's
    defaults (as `sweep run` builds them), then `fields` replaced."""
    from sweeps.driver.planning.plan import build_trial_settings
    from sweeps.driver.sweep_file.validation import validate_sweep

    config = validate_sweep({"name": "test", "params": {}, **(sweep or {})}, source="test")
    return dataclasses.replace(build_trial_settings(config), **fields)


def diagnostics_settings(sweep_diagnostics: dict | None = None, **fields):
    """The DiagnosticsSettings of a sweep whose `diagnostics:` section is `sweep_diagnostics`, then
    `fields` replaced."""
    return dataclasses.replace(
        trial_settings({"diagnostics": sweep_diagnostics or {}}).diagnostics, **fields
    )


def sweep_runs(tracking_uri: str, experiment: str):
    """(client, parent runs, child runs) of an experiment in a tracking store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    return client, parents, children


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real Ray head node on this machine, started once for the whole suite.

    CLI subprocesses join it with --address, so the suite pays Ray's start-up once.
    `ray start --block` stays in the foreground and takes its Ray processes down when
    stopped, so teardown touches this cluster only (`ray stop` would stop every
    cluster on the machine).
    """
    temp_dir = tmp_path_factory.mktemp("ray")
    port = free_port()
    # Its workers import this checkout's modules, whichever copy of the project is installed.
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    head = subprocess.Popen(
        [
            "ray",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=head)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()


def wait_for_port(port: int, *, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Ray's head node did not open port {port} in {timeout:.0f} s")


@pytest.fixture(scope="session")
def ray_connected(ray_address: str) -> str:
    """This test process joined to the session's cluster, for in-process sweeps."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_address, log_to_driver=False)
    yield ray_address
    ray.shutdown()


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its schema created once (migrations take seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(tmp_path: Path, empty_mlflow_db: Path) -> str:
    """A fresh, empty MLflow store for one test."""
    path = tmp_path / "mlflow.db"
    shutil.copy(empty_mlflow_db, path)
    return f"sqlite:///{path}"


def run_sweep_cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The installed CLI as a real subprocess, as a user runs it (only in a slow test)."""
    assert_slow_test("runs the CLI as a subprocess")
    # The session's cluster came from `ray start`, which requires Ray's auth token.
    env = os.environ | {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "PYTHONPATH": str(REPO),
    }
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [*SWEEP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 that a test can stop and start again: started as
    `sweep ui` starts it, or (`through_sweep_ui`) by `sweep ui` itself."""

    def __init__(self, db_path: Path, cwd: Path, *, through_sweep_ui: bool = False) -> None:
        self.db_path = db_path
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.through_sweep_ui = through_sweep_ui

    def command(self) -> list[str]:
        store = f"sqlite:///{self.db_path}"
        if self.through_sweep_ui:
            return [*SWEEP, "ui", "--tracking-uri", store, "--port", str(self.port)]
        # What `sweep ui` becomes, without the seconds its own start-up adds.
        server = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store]
        return [*server, "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]

    def start(self, timeout: float = 90) -> None:
        import urllib.request

        env = os.environ | {"PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # its own process group: stop() takes the server's workers down too
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            assert self.process.poll() is None, "the MLflow server exited"
            assert time.monotonic() < deadline, "the MLflow server did not answer /health"
            time.sleep(0.3)

    def stop(self) -> None:
        import signal

        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@pytest.fixture
def mlflow_server(tmp_path: Path, empty_mlflow_db: Path):
    """A real MLflow tracking server on a fresh store, stopped after the test."""
    db = tmp_path / "mlflow.db"
    shutil.copy(empty_mlflow_db, db)
    server = MlflowServer(db, cwd=tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sweep_ui(tmp_path: Path, empty_mlflow_db: Path):
    """`sweep ui` serving a fresh store, stopped after the test."""
    db = tmp_path / "mlflow.db"
    shutil.copy(empty_mlflow_db, db)
    server = MlflowServer(db, cwd=tmp_path, through_sweep_ui=True)
    server.start()
    yield server
    server.stop()


@dataclass
class AlertWebhook:
    """A real HTTP endpoint on 127.0.0.1 that keeps every alert POSTed to it."""

    url: str
    received: list[dict]


@pytest.fixture
def alert_webhook():
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    # A short poll: shutdown() waits for the next one.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield AlertWebhook(url=f"http://127.0.0.1:{server.server_port}/alerts", received=received)
    server.shutdown()
