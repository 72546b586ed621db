"""`sweep lecture`: the CS231n lecture's claims reproduced on real data, as one HTML report."""

from __future__ import annotations

import sys

import click

from commands.options import EXIT_NO_TRIAL_SUCCEEDED, expected_errors, tracking_uri_option
from sweeps.driver.lecture import STUDY_KEYS


@click.command()
@click.option(
    "--quick",
    is_flag=True,
    help="Fewer trials, seeds and epochs: about 2 minutes on 2 cores instead of about 5.",
)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False),
    default="lecture-report",
    show_default=True,
    help="Where index.html and its figures go.",
)
@click.option(
    "--study",
    "studies",
    multiple=True,
    type=click.Choice(STUDY_KEYS),
    help="Run only this study (repeatable); default: every one.",
)
@tracking_uri_option
def lecture(
    quick: bool, output_dir: str, studies: tuple[str, ...], tracking_uri: str | None
) -> None:
    """Reproduce the lecture's claims with sweep files on real data, as one HTML report.

    Runs the studies under examples/lecture/ (initialization, activations, batch norm,
    random against grid search, the update/weight ratio, sanity checks, transfer
    learning, coarse to fine), logs their sweeps to MLflow, and writes DIR/index.html:
    for each claim the rule that decides it, the figures, the numbers and the verdict.
    A claim that does not reproduce is a finding, not an error: exit 1 only
    when a study could not run.

    \b
    Example:
        sweep lecture --quick -o lecture-report
        sweep lecture --study learning_rate --study sanity
    """
    from pathlib import Path

    from sweeps.driver.lecture.runner import run_lecture

    click.echo(f"sweep lecture{' --quick' if quick else ''}: the lecture's claims, one study each")
    with expected_errors():
        outcome = run_lecture(
            Path(output_dir),
            quick=quick,
            tracking_uri=tracking_uri,
            studies=studies or STUDY_KEYS,
            echo=click.echo,
        )
    click.echo("")
    for finding in outcome.findings:
        click.echo(f"{finding.verdict:<15} {finding.claim.title} ({finding.seconds:.0f} s)")
    click.echo(f"\nreport: {outcome.report} ({outcome.seconds / 60:.1f} minutes in all)")
    click.echo(
        f"MLflow: experiment 'lecture', run {outcome.lecture_run_id} at {outcome.tracking_uri}"
    )
    if not outcome.every_study_ran:
        sys.exit(EXIT_NO_TRIAL_SUCCEEDED)
