"""The alert webhook against receivers that misbehave, real ones on 127.0.0.1: one that answers a
byte at a time, one that never answers, one that redirects; and addresses that are refused."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from sweeps.driver.events.webhook import WebhookSender, post_json
from sweeps.driver.sweep_file.addresses import forbidden_target


class Receiver:
    """A TCP server on 127.0.0.1 whose `answer(connection)` decides how it misbehaves."""

    def __init__(self, answer) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/alerts"
        self.answer = answer
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        try:
            connection.recv(65536)
            self.answer(connection, self.stop)
        except OSError:
            pass
        finally:
            connection.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def drip(connection: socket.socket, stop: threading.Event) -> None:
    """HTTP/1.1 200 OK, one byte every tenth of a second, forever: each read is quick, the whole
    never ends."""
    for byte in b"HTTP/1.1 200 OK\r\n" * 1000:
        if stop.wait(0.1):
            return
        connection.sendall(bytes([byte]))


def silence(connection: socket.socket, stop: threading.Event) -> None:
    stop.wait(60)


@pytest.fixture
def receiver(request):
    server = Receiver(request.param)
    yield server
    server.close()


@pytest.mark.parametrize(
    "receiver", [drip, silence], indirect=True, ids=["one-byte-at-a-time", "never-answers"]
)
def test_a_post_ends_at_its_wall_clock_deadline(receiver):
    started = time.monotonic()
    problem = post_json(receiver.url, {"alert": 1}, deadline_s=0.6)
    assert 0.5 < time.monotonic() - started < 2.0
    assert problem == "no answer within the deadline"


@pytest.mark.parametrize("receiver", [silence], indirect=True)
def test_at_exit_queued_alerts_get_a_few_seconds_in_all_then_a_line_says_how_many_were_lost(
    receiver,
):
    warnings: list[str] = []
    sender = WebhookSender(receiver.url, warn=warnings.append)
    for step in range(4):  # each alone would wait its whole deadline
        sender.send({"step": step}, run_id=lambda: None)
    started = time.monotonic()
    sender.close(budget_s=0.5)
    assert time.monotonic() - started < 1.5
    assert warnings == [f"4 alert(s) were not delivered to {receiver.url} within 0.5 s"]


def test_a_redirect_is_not_followed():
    received = []

    class Target(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    target = HTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, args=(0.05,), daemon=True).start()

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{target.server_port}/elsewhere")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    redirect = HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirect.serve_forever, args=(0.05,), daemon=True).start()
    try:
        problem = post_json(f"http://127.0.0.1:{redirect.server_port}/alerts", {"alert": 1})
    finally:
        redirect.shutdown()
        target.shutdown()
    assert problem == "it answered 307 (a redirect, which is not followed)"
    assert received == []


def test_a_receiver_that_answers_gets_the_json(alert_webhook):
    assert post_json(alert_webhook.url, {"direction": "too_high", "value": 0.5}) is None
    assert alert_webhook.received == [{"direction": "too_high", "value": 0.5}]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/x",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/",
        "http://100.100.100.200/",
        "ftp://example.com/alerts",
        "http:///no-host",
    ],
)
def test_metadata_and_link_local_targets_are_forbidden(url):
    assert forbidden_target(url) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/alerts",
        "https://hooks.example.com/x?token=1",
        "http://10.0.0.5/alerts",
    ],
)
def test_ordinary_targets_are_allowed(url):
    assert forbidden_target(url) is None


def test_a_post_to_a_forbidden_address_is_refused_without_connecting_unless_allowed():
    assert "link-local" in post_json("http://169.254.169.254/x", {}, deadline_s=1)
    refused = post_json("http://metadata.google.internal/x", {}, deadline_s=1)
    assert "cloud metadata service" in refused and "alert_webhook_allow_private" in refused
    # Allowed: it is tried (and here, where there is no metadata service, fails to connect or times
    # out).
    assert "link-local" not in post_json(
        "http://169.254.169.254/x", {}, allow_private=True, deadline_s=1
    )


def test_the_webhook_sender_survives_pickling_with_its_settings():
    import pickle

    sender = pickle.loads(
        pickle.dumps(WebhookSender("http://127.0.0.1:1/x", allow_private=True, warn=print))
    )
    assert (sender.url, sender.allow_private) == ("http://127.0.0.1:1/x", True)


def test_json_posted_is_the_alert_with_its_run_id(alert_webhook):
    sender = WebhookSender(alert_webhook.url, warn=print)
    sender.send({"trial": "t1"}, run_id=lambda: "abc")
    sender.close()
    assert json.loads(json.dumps(alert_webhook.received)) == [{"trial": "t1", "run_id": "abc"}]
