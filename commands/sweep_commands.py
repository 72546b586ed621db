"""Commands that run a sweep or read a sweep file: run, resume, sync, validate, check, schema."""

from __future__ import annotations

import sys

import click

from commands.options import (
    EXIT_NO_TRIAL_SUCCEEDED,
    BadInput,
    address_option,
    config_options,
    expected_errors,
    load_config,
    tracking_uri_option,
    verbose_option,
)
from commands.summary import exit_on_interruption, print_outcome_and_exit


def live_panel(verbose: bool) -> bool:
    """The live status panel needs a terminal, and would fight Ray's own logs."""
    return sys.stdout.isatty() and not verbose


@click.command()
@config_options
@address_option
@tracking_uri_option
@click.option(
    "--experiment",
    metavar="NAME",
    help="MLflow experiment name (overrides mlflow.experiment; default: the sweep name).",
)
@click.option(
    "--num-samples",
    type=int,
    metavar="N",
    help="How many trials to sample (overrides search.num_samples).",
)
@click.option(
    "--max-concurrent",
    type=int,
    metavar="N",
    help="Trials running at once (overrides search.max_concurrent).",
)
@click.option("--seed", type=int, metavar="N", help="Sampling seed (overrides search.seed).")
@click.option(
    "--resume",
    type=click.Choice(["never", "auto"]),
    default="never",
    show_default=True,
    help="auto: continue this sweep's unfinished experiment under storage.path if there is "
    "one, else start fresh "
    "(for jobs that may be restarted).",
)
@verbose_option
def run(
    config_path: str,
    overrides: tuple[str, ...],
    address: str | None,
    tracking_uri: str | None,
    experiment: str | None,
    num_samples: int | None,
    max_concurrent: int | None,
    seed: int | None,
    resume: str,
    verbose: bool,
) -> None:
    """Run a random search: sample trials, train them on Ray Tune, log each to MLflow.

    \b
    Example:
        sweep run search.yaml --set train.epochs=5 --num-samples 8
    """
    option_overrides = {
        "mlflow.experiment": experiment,
        "search.num_samples": num_samples,
        "search.max_concurrent": max_concurrent,
        "search.seed": seed,
    }
    config = load_config(
        config_path,
        overrides,
        [(key, value) for key, value in option_overrides.items() if value is not None],
    )
    from sweeps.driver.running.launch import run_sweep

    click.echo(
        f"sweep {config.name}: {config.search.num_samples} trials, "
        f"{config.search.max_concurrent} at a time, up to {config.train.epochs} epochs each"
    )
    with (
        expected_errors(prefix=config_path),
        exit_on_interruption(again=f"sweep run {config_path}"),
    ):
        outcome = run_sweep(
            config,
            tracking_uri=tracking_uri,
            address=address,
            resume=resume,
            verbose=verbose,
            live=live_panel(verbose),
            echo=click.echo,
            user_sweep_file=config_path,
        )
    print_outcome_and_exit(outcome)


@click.command()
@click.argument("experiment_path", metavar="EXPERIMENT_PATH")
@tracking_uri_option
@address_option
@verbose_option
def resume(
    experiment_path: str, tracking_uri: str | None, address: str | None, verbose: bool
) -> None:
    """Continue a sweep that was interrupted (its driver died, the machine rebooted).

    EXPERIMENT_PATH is the sweep's folder under storage.path (`sweep run` prints it as
    "Ray Tune results"). Finished trials stay as they are, unfinished ones continue
    from their last checkpoint in the same MLflow runs, and the rest are started.

    \b
    Example:
        sweep resume sweep-results/digits-mlp-20261125-101500
    """
    from sweeps.driver.running.launch import resume_sweep

    with expected_errors(), exit_on_interruption(again=f"sweep resume {experiment_path}"):
        outcome = resume_sweep(
            experiment_path,
            tracking_uri=tracking_uri,
            address=address,
            verbose=verbose,
            live=live_panel(verbose),
            echo=click.echo,
        )
    print_outcome_and_exit(outcome)


@click.command()
@click.argument("experiment_path", metavar="EXPERIMENT_PATH")
def sync(experiment_path: str) -> None:
    """Send MLflow the logs a tracking-server outage kept with a sweep's experiment.

    \b
    Example:
        sweep sync sweep-results/digits-mlp-20261125-101500
    """
    from sweeps.driver.running.launch import sync_sweep

    with expected_errors():
        tracking_uri, unsent = sync_sweep(experiment_path, echo=click.echo)
    if unsent:
        raise BadInput(
            f"{experiment_path}: MLflow at {tracking_uri} did not take {unsent} kept writes; "
            "try again later"
        )
    click.echo(f"{experiment_path}: every kept MLflow write is sent to {tracking_uri}")


@click.command()
@config_options
def validate(config_path: str, overrides: tuple[str, ...]) -> None:
    """Check a sweep file and print what it will sample, without running anything.

    \b
    Example:
        sweep validate search.yaml --set params.lr=0.01
    """
    config = load_config(config_path, overrides)
    from sweeps.driver.planning.preview import describe_sweep

    click.echo(f"{config_path}: valid")
    for line in describe_sweep(config):
        click.echo(line)


@click.command()
@config_options
def check(config_path: str, overrides: tuple[str, ...]) -> None:
    """Run the lecture's sanity checks on a sweep's model and data, without Ray.

    Checks the initial loss is about ln(num_classes), that the model can overfit
    20 training examples, and that gradients are finite. Distributions are replaced
    by a representative value: the middle of a range, the first of a choice (pin
    one with --set). Exit 1 if any check fails.

    \b
    Example:
        sweep check search.yaml --set params.activation=relu
    """
    config = load_config(config_path, overrides)
    from sweeps.driver.planning.checking import check_sweep

    with expected_errors(prefix=config_path):
        results = check_sweep(config, echo=click.echo)
    for result in results:
        click.echo(
            f"{'PASS' if result.passed else 'FAIL'}  {result.name}: {result.measured}, expected "
            f"{result.expected}"
        )
    if not all(result.passed for result in results):
        sys.exit(EXIT_NO_TRIAL_SUCCEEDED)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the sweep file, for editors that check and complete YAML.

    \b
    Example:
        sweep schema > sweep.schema.json
    """
    import json

    from sweeps.driver.sweep_file.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
