"""Shared fixtures: one real local Ray cluster per test session, fresh MLflow sqlite stores."""
from __future__ import annotations

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

REPO = Path(__file__).resolve().parent.parent

# The session's cluster comes from `ray start` with token authentication; Ray reads
# these when it is imported, so they are set before any test module imports it. The
# suite brings its own token: `ray start` refuses token mode on a machine that has no
# ~/.ray/auth_token yet (a fresh CI machine), and the tests leave the user's home alone.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
SWEEP = [sys.executable, "-m", "cli"]


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
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [
            "ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
            "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
            f"--temp-dir={temp_dir}", "--disable-usage-stats",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
    """The installed CLI as a real subprocess, as a user runs it."""
    # The session's cluster came from `ray start`, which requires Ray's auth token.
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([*SWEEP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 (started through `sweep ui`) that a test can stop and start again."""

    def __init__(self, db_path: Path, cwd: Path) -> None:
        self.db_path = db_path
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        import urllib.request

        env = os.environ | {"PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [*SWEEP, "ui", "--tracking-uri", f"sqlite:///{self.db_path}", "--port", str(self.port)],
            cwd=self.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() takes the server's workers down too
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
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield AlertWebhook(url=f"http://127.0.0.1:{server.server_port}/alerts", received=received)
    server.shutdown()
