"""The alert webhook: each alert POSTed as JSON to the URL the user configured, and nowhere else.

A webhook URL is a request the sweep makes on the user's behalf from wherever it runs,
often a cloud machine, so it is held to what was asked: http or https only, never a
link-local or cloud-metadata address (unless diagnostics.alert_webhook_allow_private
says so), no redirects followed, a wall-clock deadline per post that a receiver
trickling one byte at a time cannot stretch, and at most a few seconds at exit.
"""

from __future__ import annotations

import atexit
import http.client
import json
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from sweeps.driver.sweep_file.addresses import METADATA_HOSTS, forbidden_address

POST_DEADLINE_S = 5.0  # per alert, wall clock: connecting, sending and reading the answer
EXIT_BUDGET_S = 5.0  # for every alert still queued when the sweep ends

# an alert, and how the sending thread asks for its run id
QueuedAlert: TypeAlias = tuple[dict[str, Any], Callable[[], str | None]]


class WebhookSender:
    """POSTs each alert as JSON, from a thread of its own: Tune's event loop, which every
    trial's report waits on, must not wait on a slow receiver. A failed delivery warns
    instead of stopping the sweep."""

    def __init__(
        self, url: str, *, allow_private: bool = False, warn: Callable[[str], None]
    ) -> None:
        self.url = url
        self.allow_private = allow_private
        self.warn = warn
        self._reset()

    def _reset(self) -> None:
        # None tells the sending thread to stop
        self._queue: queue.SimpleQueue[QueuedAlert | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._delivering = 0  # queued or being posted

    def __getstate__(self) -> dict[str, Any]:
        # Tune keeps the callback holding it in its experiment state.
        return {"url": self.url, "allow_private": self.allow_private, "warn": self.warn}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url = state["url"]
        self.allow_private = state["allow_private"]
        self.warn = state["warn"]
        self._reset()

    def send(self, alert: dict[str, Any], *, run_id: Callable[[], str | None]) -> None:
        """Queue `alert`; its `run_id` is asked for on the sending thread, where waiting for the run
        is free."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._deliver_queued, name="alert-webhook", daemon=True
            )
            self._thread.start()
            atexit.register(self.close)
        self._delivering += 1
        self._queue.put((alert, run_id))

    def close(self, *, budget_s: float = EXIT_BUDGET_S) -> None:
        """Deliver what is queued within `budget_s`, then say how many alerts were not delivered."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=budget_s)
        if self._thread.is_alive() and self._delivering:
            self.warn(
                f"{self._delivering} alert(s) were not delivered to {self.url} within "
                f"{budget_s:g} s"
            )
        self._thread = None
        atexit.unregister(self.close)

    def _deliver_queued(self) -> None:
        while (queued := self._queue.get()) is not None:
            alert, run_id = queued
            problem = post_json(
                self.url, alert | {"run_id": run_id()}, allow_private=self.allow_private
            )
            self._delivering -= 1
            if problem is not None:
                self.warn(f"could not deliver an alert to {self.url}: {problem}")


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    allow_private: bool = False,
    deadline_s: float = POST_DEADLINE_S,
) -> str | None:
    """POST `payload` as JSON within `deadline_s` of wall clock; None when the receiver took it,
    else why not."""
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + deadline_s
    try:
        address = _resolve(host, port, allow_private=allow_private)
        sock = socket.create_connection(
            (address, port), timeout=max(0.1, deadline - time.monotonic())
        )
    except (OSError, ValueError) as error:
        return str(error)
    assert host is not None  # _resolve refuses a URL without one
    # However the receiver trickles its answer, the socket is shut at the deadline.
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, args=(sock,))
    watchdog.start()
    try:
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        connection = http.client.HTTPConnection(host, port)
        connection.sock = sock  # connected to the address checked above, not to a second lookup
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request(
            "POST",
            target,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return (
            "no answer within the deadline"
            if time.monotonic() >= deadline
            else str(error) or type(error).__name__
        )
    finally:
        watchdog.cancel()
        _shut(sock)
    if 300 <= status < 400:
        return f"it answered {status} (a redirect, which is not followed)"
    return None if status < 300 else f"it answered {status}"


def _resolve(host: str | None, port: int, *, allow_private: bool) -> str:
    """The address to connect to, refused if it is link-local or a metadata service (unless
    allowed)."""
    if host is None:
        raise ValueError("the URL has no host")
    if not allow_private and host.lower().rstrip(".") in METADATA_HOSTS:
        raise ValueError(
            f"{host} is a cloud metadata service; set diagnostics.alert_webhook_allow_private: "
            "true to post there anyway"
        )
    # str(): an IP (v4 or v6) lookup's address is text; typeshed's sockaddr also allows int
    address = str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0])
    why = None if allow_private else forbidden_address(address.split("%")[0])
    if why is not None:
        raise ValueError(
            f"{host} resolves to {why}; set diagnostics.alert_webhook_allow_private: true to "
            "post there anyway"
        )
    return address


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
