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
    print_next_commands(outcome)
    click.echo(f"Ray Tune results: {outcome.experiment_path}")


def print_next_commands(outcome: Any) -> None:
    """Where to look next: the UI on the sweep's runs, its report, and a refined sweep file that overwrites nothing."""
    from sweeps.driver.refine import free_output_path, next_sweep_name
    from sweeps.driver.tracking.experiment_view import experiment_url, ui_base_url

    uri = outcome.tracking_uri
    click.echo(f"MLflow: experiment {outcome.experiment_name!r} (id {outcome.experiment_id}), sweep run {outcome.parent_run_id}")
    link = experiment_url(ui_base_url(uri), outcome.experiment_id)
    if ui_base_url(uri) == uri.rstrip("/"):
        click.echo(f"  the trials:   {link}")
    else:
        click.echo(f"  the trials:   sweep ui --tracking-uri {uri}   then open {link}")
    click.echo(f"  plots:        sweep report {outcome.parent_run_id} --tracking-uri {uri}")
    refined = free_output_path(f"{next_sweep_name(outcome.sweep_name)}.yaml")
    click.echo(f"  narrow:       sweep refine {outcome.parent_run_id} --tracking-uri {uri} -o {refined}")


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
    from sweeps.driver.report import load_report
    from sweeps.driver.report_text import format_table
    from sweeps.driver.tracking.queries import SweepReader

    sweep_report = load_report(SweepReader(outcome.tracking_uri), outcome.parent_run_id, importance=False)
    click.echo(f"\ntop {min(k, outcome.succeeded)}:\n{format_table(sweep_report, k, with_importance=False)}\n")
