"""The end of a sweep as `sweep run` prints it: the best trials, and where to look next."""

from __future__ import annotations

import os

from sweeps.credentials import without_credentials
from sweeps.driver.analysis.refine import free_output_path, next_sweep_name
from sweeps.driver.analysis.report import load_report
from sweeps.driver.analysis.report_text import format_table
from sweeps.driver.tracking.experiment_view import experiment_url, ui_base_url
from sweeps.driver.tracking.queries import SweepReader


def top_trials(tracking_uri: str, parent_run_id: str, *, k: int) -> str:
    """The sweep's best `k` trials as the report's table (without importance: it takes seconds)."""
    report = load_report(SweepReader(tracking_uri), parent_run_id, importance=False)
    return format_table(report, k, with_importance=False)


def store_option(tracking_uri: str) -> str:
    """The --tracking-uri a next command needs: none when $MLFLOW_TRACKING_URI names the store
    (it may carry credentials, which are never printed)."""
    return (
        ""
        if tracking_uri == os.environ.get("MLFLOW_TRACKING_URI")
        else f" --tracking-uri {tracking_uri}"
    )


def next_commands(
    *,
    tracking_uri: str,
    experiment_name: str,
    experiment_id: str,
    parent_run_id: str,
    sweep_name: str,
) -> list[str]:
    """Where to look next: the UI on the sweep's runs, its report, and a refined sweep file that
    overwrites nothing."""
    store = store_option(tracking_uri)
    link = experiment_url(ui_base_url(without_credentials(tracking_uri)), experiment_id)
    if ui_base_url(tracking_uri) == tracking_uri.rstrip("/"):  # a tracking server serves its own UI
        trials = f"  the trials:   {link}"
    else:
        trials = f"  the trials:   sweep ui{store}   then open {link}"
    refined = free_output_path(f"{next_sweep_name(sweep_name)}.yaml")
    return [
        f"MLflow: experiment {experiment_name!r} (id {experiment_id}), sweep run {parent_run_id}",
        trials,
        f"  plots:        sweep report {parent_run_id}{store}",
        f"  narrow:       sweep refine {parent_run_id}{store} -o {refined}",
    ]
