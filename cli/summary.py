"""What `sweep run` and `sweep resume` print when a sweep ends, and their exit status."""
from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import click

from cli.options import EXIT_NO_TRIAL_SUCCEEDED


def print_outcome_and_exit(outcome: Any) -> None:
    print_summary(outcome)
    if not outcome.succeeded:
        sys.exit(EXIT_NO_TRIAL_SUCCEEDED)


def print_summary(outcome: Any) -> None:
    from sweeps.trial_params import format_params

    counts = ", ".join(f"{count} {status}" for status, count in sorted(outcome.statuses.items()))
    click.echo(f"\nfinished: {counts}")
    for error in Counter(outcome.errors):
        click.echo(f"  trial error: {error}", err=True)
    print_alerts(outcome.alerts)
    if outcome.best_value is not None:
        click.echo(f"best {outcome.metric}: {outcome.best_value:.4f}")
        click.echo(f"best params: {format_params(outcome.best_params)}")
        click.echo(f"best trial's MLflow run: {outcome.best_run_id}")
    else:
        click.echo("no trial succeeded", err=True)
    if outcome.unsent:
        click.echo(
            f"MLflow at {outcome.tracking_uri} did not answer: {outcome.unsent} writes are kept with the experiment; "
            f"send them with:  sweep sync {outcome.experiment_path}",
            err=True,
        )
    elif outcome.succeeded:
        print_top_trials(outcome)
    click.echo(f"MLflow: experiment {outcome.experiment_name!r} (id {outcome.experiment_id}), sweep run {outcome.parent_run_id}")
    click.echo(f"  open the UI:  sweep ui --tracking-uri {outcome.tracking_uri}")
    click.echo(f"  plots:        sweep report {outcome.parent_run_id} --tracking-uri {outcome.tracking_uri}")
    click.echo(f"  narrow:       sweep refine {outcome.parent_run_id} --tracking-uri {outcome.tracking_uri} -o refined.yaml")
    click.echo(f"Ray Tune results: {outcome.experiment_path}")


def print_alerts(alerts: list[dict[str, Any]]) -> None:
    if not alerts:
        return
    from sweeps.alerts import alert_summary

    by_trial: dict[str, list[dict]] = {}
    for alert in alerts:
        by_trial.setdefault(alert["trial"], []).append(alert)
    click.echo(f"alerts: {len(alerts)} in {len(by_trial)} trials (details: each trial's alerts.json in MLflow)")
    for trial, trial_alerts in by_trial.items():
        more = f" (+{len(trial_alerts) - 1} more)" if len(trial_alerts) > 1 else ""
        click.echo(f"  {trial}: {alert_summary(trial_alerts[0])}{more}: {trial_alerts[0]['hint']}")


def print_top_trials(outcome: Any, k: int = 5) -> None:
    from sweeps.driver.report import format_table, load_report
    from sweeps.driver.tracking.queries import SweepReader

    sweep_report = load_report(SweepReader(outcome.tracking_uri), outcome.parent_run_id)
    click.echo(f"\ntop {min(k, outcome.succeeded)}:\n{format_table(sweep_report, k)}\n")
