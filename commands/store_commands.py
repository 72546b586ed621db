"""Commands that read a tracking store: report, refine, ui. None of them imports Ray."""

from __future__ import annotations

from pathlib import Path

import click

from commands.options import BadInput, expected_errors, top_option, tracking_uri_option


@click.command()
@click.argument("experiment")
@tracking_uri_option
@top_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False),
    default="sweep-report",
    show_default=True,
    help="Where the plots go.",
)
def report(
    experiment: str, tracking_uri: str | None, k: int, output_format: str, output_dir: str
) -> None:
    """Rank a sweep's trials and plot them; the plots are also logged on the sweep's MLflow run.

    EXPERIMENT is the sweep's MLflow experiment name (its newest sweep) or a sweep run id.

    \b
    Example:
        sweep report digits-cs231n --top 5 -o report/
    """
    from sweeps.driver.analysis.store_reports import report_sweep

    with expected_errors():
        written = report_sweep(
            experiment,
            tracking_uri=tracking_uri,
            k=k,
            output_format=output_format,
            output_dir=Path(output_dir),
        )
    click.echo(written.text)
    plots = ", ".join(str(path) for path in written.plots)
    click.echo(
        f"plots: {plots} (also on MLflow run {written.parent_run_id})", err=output_format != "table"
    )


@click.command()
@click.argument("experiment")
@tracking_uri_option
@top_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="The refined sweep file to write.",
)
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, dir_okay=False),
    help="The coarse sweep's file as you wrote it, to keep its comments (default: the copy "
    "`sweep run` logged with the sweep).",
)
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
def refine(
    experiment: str, tracking_uri: str | None, k: int, output: str, source: str | None, force: bool
) -> None:
    """Write the next, finer sweep file from a coarse sweep's results (coarse to fine).

    Compares the trials at the latest epoch ASHA compared most of them at. A range
    narrows around the top K trials where the hyperparameter importance says it
    matters and stays as it was where it does not; a choice drops a value only when
    3 or more trials tried it and all ranked in the bottom half. The new file draws
    with a new seed, keeps your comments, and changes only what it must.

    \b
    Example:
        sweep refine digits-cs231n --top 4 -o digits-cs231n-refine-1.yaml
        sweep run digits-cs231n-refine-1.yaml
    """
    from sweeps.driver.analysis.refine import format_changes
    from sweeps.driver.analysis.store_reports import InvalidRefinement, refine_from_store

    if Path(output).exists() and not force:
        raise BadInput(f"{output}: exists; pass --force to overwrite it, or choose another -o")
    with expected_errors():
        try:
            refined, text = refine_from_store(
                experiment, tracking_uri=tracking_uri, k=k, source=source, output=output
            )
        except InvalidRefinement as error:
            raise click.ClickException(str(error)) from None
    for warning in refined.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(format_changes(refined))
    Path(output).write_text(text, encoding="utf-8")
    same_store = f" --tracking-uri {tracking_uri}" if tracking_uri else ""
    click.echo(
        f"\nwrote {output}: sweep {refined.changes['name']}; run it with: sweep run "
        f"{output}{same_store}"
    )


@click.command()
@tracking_uri_option
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Listen address; 0.0.0.0 exposes the UI to your network.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes. One serves a person and a sweep, and starts several times faster "
    "than MLflow's default of 4.",
)
def ui(tracking_uri: str | None, port: int, host: str, workers: int) -> None:
    """Open the MLflow UI on a sweep's tracking store, to compare trials side by side.

    \b
    Example:
        sweep ui --tracking-uri sqlite:///mlflow.db --port 5000
    """
    import os

    from sweeps.driver.analysis.ui import ui_server

    with expected_errors():
        server = ui_server(tracking_uri, host=host, port=port, workers=workers)
    click.echo(
        f"MLflow UI for {server.tracking_uri} at http://{host}:{port} (Ctrl-C to stop)", err=True
    )
    for link in server.links:
        click.echo(f"  {link}", err=True)
    if server.note:
        click.echo(f"({server.note})", err=True)
    # become the server: Ctrl-C and signals reach it directly
    os.execvp(server.command[0], server.command)
