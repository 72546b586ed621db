"""Commands that read a tracking store: report, refine, ui. None of them imports Ray."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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

    from sweeps.driver.report import write_plots
    from sweeps.driver.report_text import FORMATS

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
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, dir_okay=False),
    help="The coarse sweep's file as you wrote it, to keep its comments (default: the copy `sweep run` logged with the sweep).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def refine(experiment: str, tracking_uri: str | None, k: int, output: str, source: str | None, force: bool) -> None:
    """Write the next, finer sweep file from a coarse sweep's results (coarse to fine).

    Compares the trials at the latest epoch ASHA compared most of them at. A range
    narrows around the top K trials where the hyperparameter importance says it
    matters and stays as it was where it does not; a choice drops a value only when
    3 or more trials tried it and all ranked in the bottom half. The new file draws
    with a new seed, keeps your comments, and changes only what it must.

    \b
    Example:
        sweep refine digits-cs231n --top 4 -o digits-cs231n-refine-1.yaml && sweep run digits-cs231n-refine-1.yaml
    """
    from sweeps.driver.refine import format_changes

    if Path(output).exists() and not force:
        raise BadInput(f"{output}: exists; pass --force to overwrite it, or choose another -o")
    reader, sweep_report = open_report(experiment, tracking_uri)
    refined, text = refined_sweep_text(reader, sweep_report, k=k, source=source, output=output)
    for warning in refined.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(format_changes(refined))
    Path(output).write_text(text, encoding="utf-8")
    same_store = f" --tracking-uri {tracking_uri}" if tracking_uri else ""
    click.echo(f"\nwrote {output}: sweep {refined.changes['name']}; run it with: sweep run {output}{same_store}")


def refined_sweep_text(reader: Any, sweep_report: Any, *, k: int, source: str | None, output: str) -> tuple[Any, str]:
    """The refinement and the refined file's text, validated, from the user's own file where there is one."""
    from sweeps.driver.config import validate_sweep
    from sweeps.driver.refine import refine_sweep
    from sweeps.driver.refine_file import refined_file
    from sweeps.driver.sweep_file import load_yaml
    from sweeps.driver.tracking.sweep_run import USER_SWEEP_FILE
    from sweeps.errors import SweepError

    coarse_text = reader.sweep_file(sweep_report.parent_run_id)
    user_text = Path(source).read_text(encoding="utf-8") if source else reader.sweep_file(sweep_report.parent_run_id, USER_SWEEP_FILE)
    coarse = load_yaml(coarse_text, source="the coarse sweep (search.yaml on its run)")
    try:
        refined = refine_sweep(coarse, sweep_report, k=k)
        text = refined_file(user_text or coarse_text, coarse, refined.changes, comments=refined.comments)
    except ValueError as error:
        raise BadInput(str(error)) from None
    except SweepError as error:  # --from a file that no longer validates
        raise BadInput(f"{source}: {error}") from None
    if user_text is None:
        refined.warnings.append("the sweep's own file was not logged (not run by `sweep run`?): writing its resolved settings; --from FILE keeps your comments")
    try:
        validate_sweep(load_yaml(text, source=output), source=output)
    except SweepError as error:  # a bug here, not the user's: say so plainly
        raise click.ClickException(f"the refined sweep does not validate:\n{error}") from None
    return refined, text


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
    print_experiment_links(uri, f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}")
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", str(workers)]
    os.execvp(command[0], command)  # become the server: Ctrl-C and signals reach it directly


def print_experiment_links(uri: str, base_url: str) -> None:
    """Each experiment's runs table, where a person compares the trials (MLflow opens on its GenAI overview otherwise)."""
    from sweeps.driver.tracking.experiment_view import experiment_url, sweep_experiments
    from sweeps.driver.tracking.store import SQLITE_PREFIX

    if uri.startswith(SQLITE_PREFIX) and not Path(uri[len(SQLITE_PREFIX) :]).exists():
        return  # no store yet: nothing to list (and reading would create one)
    try:
        experiments = sweep_experiments(uri)
    except Exception as error:  # the server starts all the same; the links are a convenience
        click.echo(f"(could not list the experiments: {error})", err=True)
        return
    for name, experiment_id, has_view in experiments:
        click.echo(f"  {name}: {experiment_url(base_url, experiment_id, shared_view=has_view)}", err=True)
