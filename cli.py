"""The `sweep` command line: parse arguments, print, choose exit codes. No training logic here."""
from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections import Counter
from typing import Any, Callable, NoReturn

import click

# Exit codes: 0 success; 1 the sweep ran but no trial succeeded (or a sanity check failed); 2 bad input.
EXIT_NO_TRIAL_SUCCEEDED = 1
EXIT_BAD_INPUT = 2


class BadInput(click.ClickException):
    """Expected problems with what the user gave us: printed as they are, exit 2."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


def config_options(command: Callable) -> Callable:
    """The sweep file argument and the overrides every command that reads one takes."""
    # Not click.Path(exists=True): load_sweep reports a missing file or a directory
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


def load_config(config_path: str, overrides: list[tuple[str, Any]]) -> Any:
    from sweeps.config import ConfigError, load_sweep

    try:
        return load_sweep(config_path, overrides)
    except ConfigError as error:
        raise BadInput(str(error)) from None


def parse_overrides(texts: tuple[str, ...]) -> list[tuple[str, Any]]:
    from sweeps.config import ConfigError, parse_override

    try:
        return [parse_override(text) for text in texts]
    except ConfigError as error:
        raise BadInput(str(error)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sweep")
def cli() -> None:
    """Random hyperparameter search for PyTorch models on Ray Tune, tracked in MLflow."""


@cli.command()
@config_options
@click.option("--address", metavar="ADDR", envvar="RAY_ADDRESS", help="Join the Ray cluster at ADDR instead of starting Ray here. [env var: RAY_ADDRESS]")
@click.option(
    "--tracking-uri",
    metavar="URI",
    help="MLflow tracking URI; default mlflow.tracking_uri, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db.",
)
@click.option("--experiment", metavar="NAME", help="MLflow experiment name (overrides mlflow.experiment; default: the sweep name).")
@click.option("--num-samples", type=int, metavar="N", help="How many trials to sample (overrides search.num_samples).")
@click.option("--max-concurrent", type=int, metavar="N", help="Trials running at once (overrides search.max_concurrent).")
@click.option("--seed", type=int, metavar="N", help="Sampling seed (overrides search.seed).")
@click.option(
    "--resume",
    type=click.Choice(["never", "auto"]),
    default="never",
    show_default=True,
    help="auto: continue this sweep's unfinished experiment under storage.path if there is one, else start fresh "
    "(for jobs that may be restarted).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show Ray's own logs and trial tables.")
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
        "mlflow.tracking_uri": tracking_uri,
        "mlflow.experiment": experiment,
        "search.num_samples": num_samples,
        "search.max_concurrent": max_concurrent,
        "search.seed": seed,
    }
    all_overrides = parse_overrides(overrides) + [(key, value) for key, value in option_overrides.items() if value is not None]
    config = load_config(config_path, all_overrides)

    from sweeps.launch import SweepError, run_sweep

    click.echo(f"sweep {config.name}: {config.search.num_samples} trials, {config.search.max_concurrent} at a time, up to {config.train.epochs} epochs each")
    try:
        outcome = run_sweep(config, address=address, resume=resume, verbose=verbose, live=sys.stdout.isatty() and not verbose, echo=click.echo)
    except SweepError as error:
        raise BadInput(f"{config_path}: {error}") from None
    finish(outcome)


@cli.command()
@click.argument("experiment_path", metavar="EXPERIMENT_PATH")
@click.option("--tracking-uri", metavar="URI", help="MLflow tracking URI, if it moved; default: the one the sweep started with.")
@click.option("--address", metavar="ADDR", envvar="RAY_ADDRESS", help="Join the Ray cluster at ADDR instead of starting Ray here. [env var: RAY_ADDRESS]")
@click.option("-v", "--verbose", is_flag=True, help="Show Ray's own logs and trial tables.")
def resume(experiment_path: str, tracking_uri: str | None, address: str | None, verbose: bool) -> None:
    """Continue a sweep that was interrupted (its driver died, the machine rebooted).

    EXPERIMENT_PATH is the sweep's folder under storage.path (`sweep run` prints it as
    "Ray Tune results"). Finished trials stay as they are, unfinished ones continue
    from their last checkpoint in the same MLflow runs, and the rest are started.

    \b
    Example:
        sweep resume sweep-results/digits-mlp-20261125-101500
    """
    from sweeps.launch import SweepError, resume_sweep

    try:
        outcome = resume_sweep(experiment_path, tracking_uri=tracking_uri, address=address, verbose=verbose, live=sys.stdout.isatty() and not verbose, echo=click.echo)
    except SweepError as error:
        raise BadInput(str(error)) from None
    finish(outcome)


@cli.command()
@click.argument("experiment_path", metavar="EXPERIMENT_PATH")
def sync(experiment_path: str) -> None:
    """Send MLflow the logs a tracking-server outage kept with a sweep's experiment.

    \b
    Example:
        sweep sync sweep-results/digits-mlp-20261125-101500
    """
    from sweeps.journal import JournalError, SweepJournal
    from sweeps.launch import SweepError, check_tracking_reachable, sync_sweep

    try:
        journal = SweepJournal.load(experiment_path)
        check_tracking_reachable(journal.tracking_uri)
        unsent = sync_sweep(experiment_path)
    except (JournalError, SweepError) as error:
        raise BadInput(str(error)) from None
    if unsent:
        raise BadInput(f"{experiment_path}: MLflow at {journal.tracking_uri} did not take {unsent} kept writes; try again later")
    click.echo(f"{experiment_path}: every kept MLflow write is sent to {journal.tracking_uri}")


def finish(outcome: Any) -> None:
    print_summary(outcome)
    if not outcome.succeeded:
        sys.exit(EXIT_NO_TRIAL_SUCCEEDED)


def print_summary(outcome: Any) -> None:
    from sweeps.trial_params import format_params

    counts = ", ".join(f"{count} {status}" for status, count in sorted(outcome.statuses.items()))
    click.echo(f"\nfinished: {counts}")
    for error in Counter(outcome.errors):
        click.echo(f"  trial error: {error}", err=True)
    if outcome.alerts:
        from sweeps.alerts import alert_summary

        by_trial: dict[str, list[dict]] = {}
        for alert in outcome.alerts:
            by_trial.setdefault(alert["trial"], []).append(alert)
        click.echo(f"alerts: {len(outcome.alerts)} in {len(by_trial)} trials (details: each trial's alerts.json in MLflow)")
        for trial, alerts in by_trial.items():
            more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
            click.echo(f"  {trial}: {alert_summary(alerts[0])}{more}: {alerts[0]['hint']}")
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
        from sweeps.report import format_table

        _, sweep_report = open_report(outcome.parent_run_id, outcome.tracking_uri)
        click.echo(f"\ntop {min(5, outcome.succeeded)}:\n{format_table(sweep_report, 5)}\n")
    click.echo(f"MLflow: experiment {outcome.experiment_name!r} (id {outcome.experiment_id}), sweep run {outcome.parent_run_id}")
    click.echo(f"  open the UI:  sweep ui --tracking-uri {outcome.tracking_uri}")
    click.echo(f"  plots:        sweep report {outcome.parent_run_id} --tracking-uri {outcome.tracking_uri}")
    click.echo(f"  narrow:       sweep refine {outcome.parent_run_id} --tracking-uri {outcome.tracking_uri} -o refined.yaml")
    click.echo(f"Ray Tune results: {outcome.experiment_path}")


@cli.command()
@config_options
def validate(config_path: str, overrides: tuple[str, ...]) -> None:
    """Check a sweep file and print what it will sample, without running anything.

    \b
    Example:
        sweep validate search.yaml --set params.lr=0.01
    """
    config = load_config(config_path, parse_overrides(overrides))

    from sweeps.config import dump_sweep
    from sweeps.space import preview_trial_configs
    from sweeps.trial_params import format_params

    click.echo(f"{config_path}: valid")
    click.echo(dump_sweep(config).rstrip())
    sampled = {name: spec for name, spec in config.params.items() if isinstance(spec, dict)}
    click.echo(f"\nsampled at random: {', '.join(sampled) or 'nothing (every param is fixed)'}")
    click.echo(f"trials: {config.search.num_samples} (seed {config.search.seed}), first ones:")
    preview = preview_trial_configs(config.params, seed=config.search.seed, num_samples=min(3, config.search.num_samples))
    for index, trial in enumerate(preview):
        click.echo(f"  {index:>3}: {format_params(trial)}")


@cli.command()
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
    config = load_config(config_path, parse_overrides(overrides))

    from sweeps.launch import SweepError, load_sweep_data, trial_settings
    from sweeps.sanity import run_sanity_checks
    from sweeps.space import representative_params
    from sweeps.trial_params import format_params

    try:
        data = load_sweep_data(config)
    except SweepError as error:
        raise BadInput(f"{config_path}: {error}") from None
    params = representative_params(config.params)
    click.echo(f"checking {config.model.arch} on {config.data.dataset} with {format_params(params)}")
    results = run_sanity_checks(params, trial_settings(config), data)
    for result in results:
        click.echo(f"{'PASS' if result.passed else 'FAIL'}  {result.name}: {result.measured}, expected {result.expected}")
    if not all(result.passed for result in results):
        sys.exit(EXIT_NO_TRIAL_SUCCEEDED)


def tracking_uri_option(command: Callable) -> Callable:
    return click.option(
        "--tracking-uri",
        metavar="URI",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI of the sweep; default sqlite:///mlflow.db. [env var: MLFLOW_TRACKING_URI]",
    )(command)


def top_option(command: Callable) -> Callable:
    return click.option("--top", "k", type=click.IntRange(min=1), default=5, show_default=True, metavar="K", help="How many of the best trials.")(command)


def open_report(experiment: str, tracking_uri: str | None) -> tuple[Any, Any]:
    from mlflow.tracking import MlflowClient

    from sweeps.report import load_report
    from sweeps.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    try:
        return client, load_report(client, experiment)
    except LookupError as error:
        raise BadInput(f"{uri}: {error}") from None


@cli.command()
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

    from sweeps.report import FORMATS, write_plots
    from sweeps.tracking import log_report_files

    client, sweep_report = open_report(experiment, tracking_uri)
    click.echo(FORMATS[output_format](sweep_report, k))
    paths = write_plots(sweep_report, Path(output_dir), k=k)
    log_report_files(client, sweep_report.parent_run_id, [str(path) for path in paths])
    click.echo(f"plots: {', '.join(str(path) for path in paths)} (also on MLflow run {sweep_report.parent_run_id})", err=output_format != "table")


@cli.command()
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

    from sweeps.config import ConfigError, validate_sweep
    from sweeps.refine import refine_sweep
    from sweeps.tracking import read_sweep_file

    client, sweep_report = open_report(experiment, tracking_uri)
    old_sweep = yaml.safe_load(read_sweep_file(client, sweep_report.parent_run_id))
    try:
        refined = refine_sweep(old_sweep, sweep_report, k=k)
    except ValueError as error:
        raise BadInput(str(error)) from None
    for warning in refined.warnings:
        click.echo(f"warning: {warning}", err=True)
    try:
        validate_sweep(refined.sweep, source=output)
    except ConfigError as error:  # a bug here, not the user's: say so plainly
        raise click.ClickException(f"the refined sweep does not validate:\n{error}") from None
    header = f"# Refined from sweep run {sweep_report.parent_run_id} ({sweep_report.name}), around its top {k} trials.\n"
    with open(output, "w", encoding="utf-8") as file:
        file.write(header + yaml.safe_dump(refined.sweep, sort_keys=False, default_flow_style=None))
    same_store = f" --tracking-uri {tracking_uri}" if tracking_uri else ""
    click.echo(f"wrote {output}: sweep {refined.sweep['name']}; run it with: sweep run {output}{same_store}")


@cli.command()
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

    from sweeps.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    click.echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)", err=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", str(workers)]
    os.execvp(command[0], command)  # become the server: Ctrl-C and signals reach it directly


@cli.group()
def k8s() -> None:
    """Kubernetes: manifests that run a sweep as a KubeRay RayJob."""


@k8s.command("render")
@config_options
@click.option("--image", required=True, help="The container image with sweep installed (see the Dockerfile).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Ray worker pods.")
@click.option("--gpus-per-worker", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--namespace", default="default", show_default=True)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), required=True)
def k8s_render(config_path: str, overrides: tuple[str, ...], image: str, workers: int, gpus_per_worker: int, namespace: str, output_dir: str) -> None:
    """Write the manifests that run CONFIG on Kubernetes, with the sweep file embedded in a ConfigMap.

    \b
    Example:
        sweep k8s render search.yaml --image registry.example.com/sweep:0.1 --workers 2 -o k8s-out/
        kubectl apply -k k8s-out/
    """
    from pathlib import Path

    from sweeps.config import dump_sweep
    from sweeps.k8s import ClusterShape, kubernetes_name, render_manifests, write_manifests

    # In the cluster the tracking URI comes from the sweep-mlflow Secret, not from a path on this machine.
    config = load_config(config_path, parse_overrides(overrides) + [("mlflow.tracking_uri", None)])
    shape = ClusterShape(image=image, namespace=namespace, workers=workers, gpus_per_worker=gpus_per_worker)
    paths = write_manifests(render_manifests(kubernetes_name(config.name), dump_sweep(config), shape), Path(output_dir))
    click.echo(f"wrote {', '.join(str(path) for path in paths)}; apply with: kubectl apply -k {output_dir}")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the sweep file, for editors that check and complete YAML.

    \b
    Example:
        sweep schema > sweep.schema.json
    """
    import json

    from sweeps.config import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


def main() -> None:
    try:
        cli(prog_name="sweep")  # click ends every run with sys.exit
    except SystemExit as ending:
        exit_without_teardown(ending.code)


def exit_without_teardown(code: Any) -> NoReturn:
    """sys.exit(code), less the interpreter's teardown: after a sweep, Python spends most
    of a second freeing what Ray, MLflow and pandas built (bench/RESULTS.md), which the
    operating system does at once (mypy exits the same way). Exit handlers still run and
    output is flushed; while another thread runs, it is a plain sys.exit, which waits for it."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    others = [thread for thread in threading.enumerate() if thread is not threading.main_thread() and not thread.daemon]
    if run_exit_handlers is None or others:
        sys.exit(code)
    if code is None or isinstance(code, int):
        status = code or 0
    else:  # sys.exit("message") prints it and exits 1
        print(code, file=sys.stderr)
        status = 1
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a closed pipe (`sweep ... | head`) has nothing left to take
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
