"""Sending alerts where a person will see them: a webhook that receives each alert as JSON."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Callable

WEBHOOK_TIMEOUT_S = 5


def webhook_sender(url: str, *, warn: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    """A function that POSTs an alert to `url`; a failed delivery warns instead of stopping the sweep."""

    def send(alert: dict[str, Any]) -> None:
        request = urllib.request.Request(
            url, data=json.dumps(alert).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S):
                pass
        except (urllib.error.URLError, OSError) as error:
            warn(f"could not deliver alert to {url}: {error}")

    return send
