"""What `sweep run` and `sweep resume` print when a sweep ends, and their exit status."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from commands.options import EXIT_NO_TRIAL_SUCCEEDED
from sweeps.driver.running.interruption import exit_code

if TYPE_CHECKING:
    from sweeps.driver.running.outcome import SweepOutcome


def print_outcome_and_exit(outcome: SweepOutcome) -> None:
    if outcome.interrupted_by is not None:
        print_interrupted(outcome)
        sys.exit(exit_code(outcome.interrupted_by))
    print_summary(outcome)
    if not outcome.succeeded:
        sys.exit(EXIT_NO_TRIAL_SUCCEEDED)


def print_interrupted(outcome: SweepOutcome) -> None:
    """What a signal left: what finished, what stopped mid-way, and the one command that carries
    on."""
    import signal

    assert outcome.interrupted_by is not None
    counts = ", ".join(f"{count} {status}" for status, count in sorted(outcome.statuses.items()))
    not_started = f", {outcome.not_started} not started" if outcome.not_started else ""
    click.echo(
        f"\ninterrupted by {signal.Signals(outcome.interrupted_by).name}: "
        f"{counts or 'no trial started'}{not_started}",
        err=True,
    )
    click.echo(
        f"MLflow: experiment {outcome.experiment_name!r}, sweep run {outcome.parent_run_id} "
        "(KILLED, sweep.state=interrupted)",
        err=True,
    )
    if outcome.unsent:
        click.echo(
            f"  {outcome.unsent} MLflow writes are kept with the experiment; `sweep resume` "
            "sends them first",
            err=True,
        )
    click.echo(f"continue it with:  sweep resume {outcome.experiment_path}", err=True)


@contextlib.contextmanager
def exit_on_interruption(again: str) -> Iterator[None]:
    """A signal that stopped the sweep before training: say so, and exit 128 + its number."""
    from sweeps.driver.running.interruption import SweepInterrupted

    try:
        yield
    except SweepInterrupted as interrupted:
        click.echo(
            f"{interrupted}: stopped before any trial trained; start it again with:  {again}",
            err=True,
        )
        sys.exit(exit_code(interrupted.signum))


def print_summary(outcome: SweepOutcome) -> None:
    from sweeps.trial_params import format_params

    counts = ", ".join(f"{count} {status}" for status, count in sorted(outcome.statuses.items()))
    click.echo(f"\nfinished: {counts}")
    for error in Counter(outcome.errors):
        click.echo(f"  trial error: {error}", err=True)
    print_alerts(outcome.alerts)
    if outcome.best_value is not None:
        click.echo(f"best {outcome.metric}: {outcome.best_value:.4f}")
        click.echo(f"best params: {format_params(outcome.best_params or {})}")
        click.echo(f"best trial's MLflow run: {outcome.best_run_id}")
    else:
        click.echo("no trial succeeded", err=True)
    if outcome.unsent:
        click.echo(
            f"MLflow at {outcome.tracking_uri} did not answer: {outcome.unsent} writes are kept "
            "with the experiment; "
            f"send them with:  sweep sync {outcome.experiment_path}",
            err=True,
        )
    elif outcome.succeeded:
        print_top_trials(outcome)
    print_next_commands(outcome)
    click.echo(f"Ray Tune results: {outcome.experiment_path}")


def print_next_commands(outcome: SweepOutcome) -> None:
    from sweeps.driver.analysis.summary import next_commands

    lines = next_commands(
        tracking_uri=outcome.tracking_uri,
        experiment_name=outcome.experiment_name,
        experiment_id=outcome.experiment_id,
        parent_run_id=outcome.parent_run_id,
        sweep_name=outcome.sweep_name,
    )
    for line in lines:
        click.echo(line)


def print_alerts(alerts: list[dict[str, Any]]) -> None:
    if not alerts:
        return
    from sweeps.alerts import alert_summary

    by_trial: dict[str, list[dict]] = {}
    for alert in alerts:
        by_trial.setdefault(alert["trial"], []).append(alert)
    click.echo(
        f"alerts: {len(alerts)} in {len(by_trial)} trials (details: each trial's alerts.json in "
        "MLflow)"
    )
    for trial, trial_alerts in by_trial.items():
        more = f" (+{len(trial_alerts) - 1} more)" if len(trial_alerts) > 1 else ""
        click.echo(f"  {trial}: {alert_summary(trial_alerts[0])}{more}: {trial_alerts[0]['hint']}")


def print_top_trials(outcome: SweepOutcome, k: int = 5) -> None:
    from sweeps.driver.analysis.summary import top_trials

    table = top_trials(outcome.tracking_uri, outcome.parent_run_id, k=k)
    click.echo(f"\ntop {min(k, outcome.succeeded)}:\n{table}\n")
