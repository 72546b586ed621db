"""Ctrl-C, SIGTERM and SIGHUP stop a sweep the way a person means it: trials stop at their
last checkpoints, the record says "interrupted", and `sweep resume` carries on.

The first signal during training asks Ray Tune to end the run gracefully (it saves its
experiment state, and the running trials keep their checkpoints); before or after
training it unwinds at once as SweepInterrupted. A second signal leaves at once: what
closing the runs would have written waits in the spool for `sweep resume` or `sweep sync`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from sweeps.driver.cluster import ray_cluster

INTERRUPTING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + signum


class SweepInterrupted(BaseException):
    """A signal stopped the sweep outside training. A BaseException, like KeyboardInterrupt:
    the handlers that turn errors into messages must not catch it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def interrupt_on_signals() -> None:
    """Until a command handles them itself: SIGINT, SIGTERM and SIGHUP raise SweepInterrupted
    (not KeyboardInterrupt, which click turns into "Aborted!" and exit 1)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise SweepInterrupted(signum)

    for sig in INTERRUPTING_SIGNALS:
        signal.signal(sig, interrupt)


@dataclass
class Interruption:
    """Which signal asked the sweep to stop, if one did, and whether Tune is training now."""

    signum: int | None = None
    tune_running: bool = False
    handler: Callable[[int, Any], None] | None = None
    # the experiment folder, parent run and journal are being made: all or none
    opening: bool = False

    @contextlib.contextmanager
    def opening_the_sweep(self) -> Iterator[None]:
        """A signal while the sweep's records are made waits until they all exist (else a parent
        run could be left RUNNING with no journal to close it), then unwinds as SweepInterrupted."""
        self.opening = True
        try:
            yield
        finally:
            self.opening = False
        if self.signum is not None:
            raise SweepInterrupted(self.signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def reclaim(self) -> None:
        """Handle the signals again: ray.init installs its own SIGTERM handler, which dumps
        a C++ stack on the terminal and ends the process without closing any run."""
        if self.handler is not None:
            for sig in INTERRUPTING_SIGNALS:
                signal.signal(sig, self.handler)


@contextlib.contextmanager
def stop_gracefully_on_signals(echo: Callable[[str], None]) -> Iterator[Interruption]:
    """Handle SIGINT, SIGTERM and SIGHUP for the duration (main thread only; elsewhere, Python's
    defaults)."""
    state = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if state.signum is not None:
            os._exit(exit_code(signum))  # asked twice: the person wants out now
        state.signum = signum
        if state.opening:
            return  # raised once the records exist (Interruption.opening_the_sweep)
        if state.tune_running and ray_cluster.ask_tune_to_stop():
            echo(
                f"\n{state.name}: stopping the running trials at their last checkpoints (again "
                "to quit at once)"
            )
            return
        raise SweepInterrupted(signum)

    state.handler = handle
    previous = {sig: signal.getsignal(sig) for sig in INTERRUPTING_SIGNALS}
    state.reclaim()
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
