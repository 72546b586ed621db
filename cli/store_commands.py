"""Commands that read a tracking store: report, refine, ui. None of them imports Ray."""
from __future__ import annotations

import sys

import click

from cli.options import BadInput, expected_errors, top_option, tracking_uri_option


def open_report(experiment: str, tracking_uri: str | None) -> tuple[object, object]:
    """(reader, report) of a sweep in the store the one rule picks."""
    from sweeps.driver.report import load_report
    from sweeps.driver.tracking.queries import SweepReader
    from sweeps.driver.tracking.store import check_reachable, resolve_tracking_uri

    with expected_errors():
        uri = resolve_tracking_uri(tracking_uri)
        check_reachable(uri, create=False)
    reader = SweepReader(uri)
    try:
        return reader, load_report(reader, experiment)
    except LookupError as error:
        raise BadInput(f"{uri}: {error}") from None


@click.command()
@click.argument("experiment")
@tracking_uri_option
@top_option
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default="sweep-report", show_default=True, help="Where the plots go.")
def report(experiment: str, tracking_uri: str | None, k: int, output_format: str, output_dir: str) -> None:
    """Rank a sweep's trials and plot them; the plots are also logged on the sweep's MLflow run.

    EXPERIMENT is the sweep's MLflow experiment name (its newest sweep) or a sweep run id.

    \b
    Example:
        sweep report digits-cs231n --top 5 -o report/
    """
    from pathlib import Path

    from sweeps.driver.report import FORMATS, write_plots

    reader, sweep_report = open_report(experiment, tracking_uri)
    click.echo(FORMATS[output_format](sweep_report, k))
    paths = write_plots(sweep_report, Path(output_dir), k=k)
    reader.log_report_files(sweep_report.parent_run_id, [str(path) for path in paths])
    click.echo(f"plots: {', '.join(str(path) for path in paths)} (also on MLflow run {sweep_report.parent_run_id})", err=output_format != "table")


@click.command()
@click.argument("experiment")
@tracking_uri_option
@top_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The refined sweep file to write.")
def refine(experiment: str, tracking_uri: str | None, k: int, output: str) -> None:
    """Write a new sweep file with every range narrowed around the top trials (coarse to fine).

    log_uniform and uniform ranges shrink to the top K trials' values plus a margin
    (in log space for log_uniform); a choice keeps the values among the top K. When
    the best value sits at the edge of its range, that side is widened instead.

    \b
    Example:
        sweep refine digits-cs231n --top 4 -o refined.yaml && sweep run refined.yaml
    """
    import yaml

    from sweeps.driver.config import validate_sweep
    from sweeps.driver.refine import refine_sweep
    from sweeps.errors import SweepError

    reader, sweep_report = open_report(experiment, tracking_uri)
    old_sweep = yaml.safe_load(reader.sweep_file(sweep_report.parent_run_id))
    try:
        refined = refine_sweep(old_sweep, sweep_report, k=k)
    except ValueError as error:
        raise BadInput(str(error)) from None
    for warning in refined.warnings:
        click.echo(f"warning: {warning}", err=True)
    try:
        validate_sweep(refined.sweep, source=output)
    except SweepError as error:  # a bug here, not the user's: say so plainly
        raise click.ClickException(f"the refined sweep does not validate:\n{error}") from None
    header = f"# Refined from sweep run {sweep_report.parent_run_id} ({sweep_report.name}), around its top {k} trials.\n"
    with open(output, "w", encoding="utf-8") as file:
        file.write(header + yaml.safe_dump(refined.sweep, sort_keys=False, default_flow_style=None))
    same_store = f" --tracking-uri {tracking_uri}" if tracking_uri else ""
    click.echo(f"wrote {output}: sweep {refined.sweep['name']}; run it with: sweep run {output}{same_store}")


@click.command()
@tracking_uri_option
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address; 0.0.0.0 exposes the UI to your network.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes. One serves a person and a sweep, and starts several times faster than MLflow's default of 4.",
)
def ui(tracking_uri: str | None, port: int, host: str, workers: int) -> None:
    """Open the MLflow UI on a sweep's tracking store, to compare trials side by side.

    \b
    Example:
        sweep ui --tracking-uri sqlite:///mlflow.db --port 5000
    """
    import os

    from sweeps.driver.tracking.store import (
        check_reachable,
        resolve_tracking_uri,
        sqlite_path,
    )

    with expected_errors():
        uri = resolve_tracking_uri(tracking_uri)
        if sqlite_path(uri) is None:
            raise BadInput(f"{uri} is a tracking server already: open it in a browser (`sweep ui` serves a sqlite store)")
        check_reachable(uri, create=False)  # and, under the store's setup lock, its tables made before the server starts
    click.echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)", err=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", str(workers)]
    os.execvp(command[0], command)  # become the server: Ctrl-C and signals reach it directly
