"""The sweep's clock from launch, and the line a start-up step prints the moment it begins.

Imported first by the CLI, so the clock starts when the `sweep` command does: the
progress lines and the live panel count from there, not from when Ray was up.
"""

from __future__ import annotations

import time
from collections.abc import Callable

LAUNCHED_AT = time.monotonic()


def since_launch() -> float:
    return time.monotonic() - LAUNCHED_AT


def stamp(text: str) -> str:
    """`[   1.2s] text`: a line of the sweep's log, timed from launch."""
    return f"[{since_launch():6.1f}s] {text}"


def announce(echo: Callable[[str], None], text: str) -> None:
    """Say a start-up step now, before it takes its seconds."""
    echo(stamp(text))
