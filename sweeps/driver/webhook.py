"""The alert webhook: each alert POSTed as JSON to a URL the user configured."""
from __future__ import annotations

import atexit
import json
import queue
import threading
import urllib.error
import urllib.request
from typing import Any, Callable

WEBHOOK_TIMEOUT_S = 5


class WebhookSender:
    """POSTs each alert as JSON to a URL, from a thread of its own: Tune's event loop, which
    every trial's report waits on, must not wait on a slow receiver. A failed delivery warns
    instead of stopping the sweep."""

    def __init__(self, url: str, *, warn: Callable[[str], None]) -> None:
        self.url = url
        self.warn = warn
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "warn": self.warn}  # Tune keeps the callback holding it in its experiment state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], warn=state["warn"])

    def send(self, alert: dict[str, Any], *, run_id: Callable[[], str | None]) -> None:
        """Queue `alert`; its `run_id` is asked for on the sending thread, where waiting for the run is free."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._deliver_queued, name="alert-webhook", daemon=True)
            self._thread.start()
            atexit.register(self.close)
        self._queue.put((alert, run_id))

    def close(self) -> None:
        """Deliver what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            atexit.unregister(self.close)

    def _deliver_queued(self) -> None:
        while (queued := self._queue.get()) is not None:
            alert, run_id = queued
            self._post(alert | {"run_id": run_id()})

    def _post(self, alert: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url, data=json.dumps(alert).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S):
                pass
        except (urllib.error.URLError, OSError) as error:
            self.warn(f"could not deliver alert to {self.url}: {error}")
