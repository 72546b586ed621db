"""Leaving the process: the exit status, without Python's slow teardown."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import Any, NoReturn


def exit_without_teardown(code: Any) -> NoReturn:
    """sys.exit(code), less the interpreter's teardown: after a sweep, Python spends a
    long time freeing what Ray, MLflow and pandas built (bench/RESULTS.md), which the
    operating system does at once (mypy exits the same way). Exit handlers still run and
    output is flushed; while another thread runs, it is a plain sys.exit, which waits for it."""
    # Python's own private hook, checked on 3.11; without it, a plain sys.exit.
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [
        thread
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon
    ]
    if run_exit_handlers is None or others:
        sys.exit(code)
    if code is None or isinstance(code, int):
        status = code or 0
    else:  # sys.exit("message") prints it and exits 1
        print(code, file=sys.stderr)
        status = 1
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(
            OSError
        ):  # a closed pipe (`sweep ... | head`) has nothing left to take
            stream.flush()
    os._exit(status)
