"""A real signal while the sweep's records are being made waits for them all, then unwinds."""

from __future__ import annotations

import os
import signal

import pytest

from sweeps.driver.running.interruption import SweepInterrupted, stop_gracefully_on_signals


def test_a_signal_while_the_sweep_opens_is_raised_once_its_records_exist():
    made = []
    with stop_gracefully_on_signals(echo=lambda line: None) as interruption:
        with pytest.raises(SweepInterrupted, match="SIGTERM") as raised:
            with interruption.opening_the_sweep():
                made.append("experiment folder")
                os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (the main) thread at once
                made.append("parent run")
                made.append("journal")
    assert (
        made == ["experiment folder", "parent run", "journal"]
        and raised.value.signum == signal.SIGTERM
    )
    assert not interruption.opening


def test_outside_the_opening_a_signal_unwinds_at_once():
    made = []
    with stop_gracefully_on_signals(echo=lambda line: None):
        with pytest.raises(SweepInterrupted, match="SIGINT"):
            made.append("data")
            os.kill(os.getpid(), signal.SIGINT)
            made.append("never")
    assert made == ["data"]


def test_an_error_while_opening_is_not_hidden_by_a_signal_that_came_before_it():
    with stop_gracefully_on_signals(echo=lambda line: None) as interruption:
        with pytest.raises(OSError, match="disk full"):
            with interruption.opening_the_sweep():
                os.kill(os.getpid(), signal.SIGHUP)
                raise OSError("disk full")
    assert interruption.signum == signal.SIGHUP
