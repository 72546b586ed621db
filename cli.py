"""The `sweep` command line: the Click group and its entry point, `main` (the commands are in
commands/).

Each command imports what it needs when it runs, so `sweep --help`, `validate` and
`schema` load neither torch, Ray nor MLflow.
"""

from __future__ import annotations

import click

from commands import k8s_commands, lecture_commands, store_commands, sweep_commands
from commands.exit import exit_without_teardown
from commands.redaction import redact_output
from sweeps.driver.running import startup  # noqa: F401 -- first: the sweep's clock starts with the command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sweep")
def cli() -> None:
    """Random hyperparameter search for PyTorch models on Ray Tune, tracked in MLflow."""


for command in (
    sweep_commands.run,
    sweep_commands.resume,
    sweep_commands.sync,
    sweep_commands.validate,
    sweep_commands.check,
    store_commands.report,
    store_commands.refine,
    store_commands.ui,
    lecture_commands.lecture,
    k8s_commands.k8s,
    sweep_commands.schema,
):
    cli.add_command(command)


def main() -> None:
    from sweeps.driver.running.interruption import (
        SweepInterrupted,
        exit_code,
        interrupt_on_signals,
    )

    interrupt_on_signals()  # from the first moment: a signal ends any command with 128 + its number
    redact_output()
    try:
        cli(prog_name="sweep")  # click ends every run with sys.exit
    except SweepInterrupted as interrupted:
        click.echo(f"{interrupted}: interrupted", err=True)
        exit_without_teardown(exit_code(interrupted.signum))
    except SystemExit as ending:
        exit_without_teardown(ending.code)


__all__ = ["cli", "exit_without_teardown", "main"]


if __name__ == "__main__":  # `python -m cli`, as the tests run it from a checkout
    main()
