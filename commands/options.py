"""What the commands share: exit codes, the clean one-line error, and reusable options."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from sweeps.driver.sweep_file.schema import SweepConfig

# Exit codes: 0 success; 1 the sweep ran but no trial succeeded (or a sanity check failed, or a
# lecture study
# could not run); 2 bad input.
EXIT_NO_TRIAL_SUCCEEDED = 1
EXIT_BAD_INPUT = 2


class BadInput(click.ClickException):
    """Expected problems with what the user gave us: printed as they are, exit 2."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


@contextlib.contextmanager
def expected_errors(prefix: str | None = None) -> Iterator[None]:
    """Turn the errors sweep expects (sweeps.errors.SweepError) into a clean message and exit 2."""
    from sweeps.errors import SweepError

    try:
        yield
    except SweepError as error:
        raise BadInput(f"{prefix}: {error}" if prefix else str(error)) from None


def config_options(command: Callable) -> Callable:
    """The sweep file argument and the overrides every command that reads one takes."""
    # Not click.Path(exists=True): load_config reports a missing file or a directory
    # in the same one-line form as every other problem with the file.
    command = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a field by its dotted path; the value is parsed as YAML "
        "(e.g. --set train.epochs=2 --set model.hidden=[64,64]). Repeatable.",
    )(command)
    return click.argument("config_path", metavar="CONFIG")(command)


def tracking_uri_option(command: Callable) -> Callable:
    # Not click's envvar=: the environment has its place in the one rule that resolves
    # every command's tracking URI (sweeps.driver.tracking.store.resolve_tracking_uri).
    return click.option(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI. Default: $MLFLOW_TRACKING_URI, then the sweep's own "
        "(mlflow.tracking_uri, or the one it ran with), then sqlite:///mlflow.db. [env var: "
        "MLFLOW_TRACKING_URI]",
    )(command)


def address_option(command: Callable) -> Callable:
    return click.option(
        "--address",
        metavar="ADDR",
        envvar="RAY_ADDRESS",
        help="Join the Ray cluster at ADDR instead of starting Ray here. [env var: RAY_ADDRESS]",
    )(command)


def verbose_option(command: Callable) -> Callable:
    return click.option(
        "-v", "--verbose", is_flag=True, help="Show Ray's own logs and trial tables."
    )(command)


def top_option(command: Callable) -> Callable:
    return click.option(
        "--top",
        "k",
        type=click.IntRange(min=1),
        default=5,
        show_default=True,
        metavar="K",
        help="How many of the best trials.",
    )(command)


def load_config(
    config_path: str, overrides: tuple[str, ...], extra: Sequence[tuple[str, Any]] = ()
) -> SweepConfig:
    """The validated sweep file with its `--set` overrides (then `extra` ones from other
    options)."""
    from sweeps.driver.sweep_file.reading import load_sweep, parse_override

    with expected_errors():
        parsed = [parse_override(text) for text in overrides]
        return load_sweep(config_path, parsed + list(extra))
