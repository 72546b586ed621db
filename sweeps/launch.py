"""Launch a validated sweep on Ray Tune: random search, ASHA, one MLflow parent run."""
from __future__ import annotations

import logging
import math
import os
import socket
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar


from sweeps.config import SweepConfig, dump_sweep
from sweeps.trial_status import SUCCEEDED


T = TypeVar("T")
KEEP_CHECKPOINTS = 2  # per trial, newest first: enough to survive one torn write


class SweepError(Exception):
    """An expected reason a sweep could not start (unreachable cluster or tracking store)."""


@dataclass
class SweepOutcome:
    tracking_uri: str
    experiment_name: str
    experiment_id: str
    parent_run_id: str
    experiment_path: str
    metric: str
    statuses: Counter = field(default_factory=Counter)
    best_value: float | None = None
    best_params: dict[str, Any] | None = None
    best_run_id: str | None = None
    errors: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    unsent: int = 0  # MLflow writes still waiting in the spool when the sweep ended

    @property
    def succeeded(self) -> int:
        return sum(self.statuses[status] for status in SUCCEEDED)


def fixed_settings(config: SweepConfig) -> dict[str, Any]:
    """The parent run's params: every setting as a dotted key, distributions as written."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and not (prefix.startswith("params.") and len(value) == 1):
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else key, child)
        else:
            flat[prefix] = value

    walk("", config.model_dump(mode="json", exclude={"mlflow": {"tracking_uri"}}))
    return flat


def run_sweep(
    config: SweepConfig,
    *,
    address: str | None = None,
    resume: str = "never",
    verbose: bool = False,
    live: bool = False,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Run the whole sweep and return how it went; raises SweepError before any trial when it cannot start.

    With resume="auto", an unfinished experiment of this sweep under storage.path
    is continued instead (what a restarted Kubernetes job does).
    """
    storage_path = resolved_storage_path(config.storage.path)
    if resume == "auto":
        from sweeps.journal import find_resumable

        experiment_path = find_resumable(storage_path, config.name)
        if experiment_path is not None:
            echo(f"resuming the unfinished sweep in {experiment_path}")
            return resume_sweep(experiment_path, address=address, verbose=verbose, live=live, echo=echo)
    # What we can check without writing anything comes first: bad input must leave nothing behind.
    check_ray_reachable(address)
    check_storage_writable(storage_path)

    def load_data_and_reach_tracking() -> tuple[Any, str]:
        from sweeps import tracking

        if config.diagnostics.enabled:
            # Pillow loads now, while Ray starts, not when the first trial's histogram figure
            # is drawn mid-sweep, where its import would hold the GIL against Tune's event loop.
            import sweeps.histogram_figure  # noqa: F401

        data = load_sweep_data(config)
        tracking_uri = tracking.absolute_uri(tracking.resolve_tracking_uri(config.mlflow.tracking_uri))
        check_tracking_reachable(tracking_uri)
        return data, tracking_uri

    with _ray(address, verbose=verbose, meanwhile=load_data_and_reach_tracking) as (data, tracking_uri):
        check_storage_reaches_every_node(config)
        journal = _start_sweep(config, tracking_uri, storage_path)
        return _fit(config, journal, data, restore=False, echo=echo, verbose=verbose, live=live)


def resume_sweep(
    experiment_path: str,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    verbose: bool = False,
    live: bool = False,
    echo: Callable[[str], None] = print,
) -> SweepOutcome:
    """Continue an interrupted sweep with Tune's restore, in the same MLflow runs; first send what an outage kept back."""
    from sweeps import tracking
    from sweeps.config import ConfigError, load_yaml, validate_sweep
    from sweeps.journal import JournalError, SweepJournal

    experiment_path = experiment_path if is_uri(experiment_path) else str(Path(experiment_path).expanduser().resolve())
    try:
        journal = SweepJournal.load(experiment_path)
        config = validate_sweep(load_yaml(journal.sweep_yaml), source=f"{experiment_path}/sweep.json")
    except (JournalError, ConfigError) as error:
        raise SweepError(str(error)) from None
    if journal.finished:
        raise SweepError(f"{experiment_path}: this sweep finished; start a new one with `sweep run`")
    check_ray_reachable(address)
    if tracking_uri:
        journal.tracking_uri = tracking.absolute_uri(tracking_uri)
        journal.save()
    check_tracking_reachable(journal.tracking_uri)
    unsent = sync_sweep(experiment_path)
    if unsent:
        raise SweepError(f"MLflow at {journal.tracking_uri} refused {unsent} kept writes; see {experiment_path}/mlflow-spool.jsonl")
    tracking.reopen_sweep_run(journal.tracking_uri, journal.parent_run_id)
    with _ray(address, verbose=verbose, meanwhile=lambda: load_sweep_data(config)) as data:
        return _fit(config, SweepJournal.load(experiment_path), data, restore=True, echo=echo, verbose=verbose, live=live)


def sync_sweep(experiment_path: str) -> int:
    """Send the MLflow writes an outage kept with the experiment; returns how many are still waiting."""
    from sweeps.journal import Spool, SweepJournal
    from sweeps.tracking import MlflowWriter

    journal = SweepJournal.load(experiment_path)
    return MlflowWriter(journal.tracking_uri, Spool(experiment_path), journal).close()


def _start_sweep(config: SweepConfig, tracking_uri: str, storage_path: str) -> Any:
    """The sweep's MLflow experiment and parent run, and its journal beside Tune's experiment."""
    from mlflow.tracking import MlflowClient

    from sweeps import tracking
    from sweeps.journal import SweepJournal

    client = MlflowClient(tracking_uri)
    try:
        experiment_id = tracking.open_experiment(client, config.experiment_name)
    except Exception as error:  # MLflow raises many types for a store it cannot reach
        raise SweepError(f"cannot reach the MLflow tracking store at {tracking_uri}: {_first_line(error)}") from None
    run_name = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    # The URI lives in the journal; the sweep file reads the same wherever it is tracked.
    sweep_yaml = dump_sweep(config.model_copy(update={"mlflow": config.mlflow.model_copy(update={"tracking_uri": None})}))
    parent_run_id = tracking.start_sweep_run(
        client,
        experiment_id,
        run_name=run_name,
        sweep_yaml=sweep_yaml,
        fixed_settings=fixed_settings(config),
        refines=config.refines,
    )
    journal = SweepJournal(
        experiment_path=f"{storage_path.rstrip('/')}/{run_name}",
        sweep_name=config.name,
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=parent_run_id,
        sweep_yaml=sweep_yaml,
    )
    journal.save()
    return journal


def _fit(config: SweepConfig, journal: Any, data: Any, *, restore: bool, echo: Callable[[str], None], verbose: bool, live: bool) -> SweepOutcome:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from sweeps import tracking
    from sweeps.checkpoint_recovery import ResumeFromNewestCheckpoint
    from sweeps.journal import Spool, SweepJournal
    from sweeps.progress import ProgressPrinter
    from sweeps.space import build_search_algorithm, build_search_space
    from sweeps.trainable import train_trial
    from sweeps.trial_status import trial_status

    _let_trials_take_prestarted_workers()
    # Tune's own per-trial files: result.json and progress.csv, not TensorBoard event files
    # (MLflow is where a person looks); and no warning that checkpoints force snapshots.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, data=data, settings=trial_settings(config)),
        {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial},
    )
    if restore:
        # Tune brings back its trials, searcher and callbacks; the callbacks find their runs in the journal.
        tuner = tune.Tuner.restore(journal.experiment_path, trainable, resume_unfinished=True, param_space=build_search_space(config.params))
    else:
        on_alert = None
        if config.diagnostics.alert_webhook:
            from sweeps.alerts import WebhookSender

            on_alert = WebhookSender(config.diagnostics.alert_webhook, warn=echo)
        progress = ProgressPrinter(
            num_samples=config.search.num_samples,
            epochs=config.train.epochs,
            metric=config.search.metric,
            mode=config.search.mode,
            echo=echo,
            live=live,
        )
        storage_path, run_name = journal.experiment_path.rsplit("/", 1)
        tuner = tune.Tuner(
            trainable,
            param_space=build_search_space(config.params),
            tune_config=tune.TuneConfig(
                metric=config.search.metric,
                mode=config.search.mode,
                num_samples=config.search.num_samples,
                search_alg=build_search_algorithm(seed=config.search.seed, max_concurrent=config.search.max_concurrent),
                scheduler=_scheduler(config),
                # A trial reuses a finished trial's worker: no new process importing torch per
                # trial. run_training seeds and builds everything afresh, so nothing carries over.
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=run_name,
                storage_path=storage_path,
                callbacks=[
                    tracking.MlflowTrialLogger(journal.experiment_path, epochs=config.train.epochs, on_alert=on_alert),
                    progress,
                    JsonLoggerCallback(),
                    CSVLoggerCallback(),
                    ResumeFromNewestCheckpoint(),
                ],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
                failure_config=tune.FailureConfig(max_failures=config.search.max_failures),
                verbose=2 if verbose else 0,
            ),
        )
    try:
        results = tuner.fit()
    except BaseException:
        # A writer of its own once the trial logger's has closed: both keep the same spool.
        writer = tracking.MlflowWriter(journal.tracking_uri, Spool(journal.experiment_path), journal, warn=echo)
        tracking.fail_sweep_run(writer, journal.parent_run_id)
        writer.close()
        raise

    journal = SweepJournal.load(journal.experiment_path)  # as the trial logger left it
    outcome = SweepOutcome(
        tracking_uri=journal.tracking_uri,
        experiment_name=config.experiment_name,
        experiment_id=journal.experiment_id,
        parent_run_id=journal.parent_run_id,
        experiment_path=journal.experiment_path,
        metric=config.search.metric,
        alerts=journal.alerts,
    )
    for result in results:
        status = trial_status(result.metrics, epochs=config.train.epochs, errored=result.error is not None)
        outcome.statuses[status] += 1
        if result.error is not None:
            outcome.errors.append(_first_line(result.error))
    if outcome.succeeded:
        best = results.get_best_result(metric=config.search.metric, mode=config.search.mode, scope="all", filter_nan_and_inf=True)
        history = best.metrics_dataframe[config.search.metric]
        outcome.best_value = float(history.max() if config.search.mode == "max" else history.min())
        outcome.best_params = dict(best.config)
        outcome.best_run_id = journal.run_of(best.metrics["trial_id"])
    writer = tracking.MlflowWriter(journal.tracking_uri, Spool(journal.experiment_path), journal, warn=echo)
    tracking.finish_sweep_run(
        writer,
        journal.parent_run_id,
        metric=config.search.metric,
        best_value=outcome.best_value,
        best_run_id=outcome.best_run_id,
        status_counts=dict(outcome.statuses),
        alerts=journal.alerts,
    )
    outcome.unsent = writer.close()
    if outcome.best_run_id is not None:
        outcome.best_run_id = writer.run_id(outcome.best_run_id)  # created by now, unless the store is away
    journal.finished = True
    journal.save()
    return outcome


def _let_trials_take_prestarted_workers() -> None:
    """Ray starts a worker process per CPU as it comes up, which boots (Python, Ray) while
    the sweep gets ready. Tune creates its trial actors with
    `runtime_env={"env_vars": {"PL_DISABLE_FORK": "1"}}`, for PyTorch Lightning, which no
    trial here uses, and a worker started without that runtime env never hosts one: each
    trial worker was a new process, and the first trials finished 0.7 s later
    (bench/RESULTS.md). Without the variable the trials take the workers Ray started."""
    try:
        from ray.tune.execution import class_cache
    except ImportError:  # Tune moved it: trials start in new workers, as before
        return
    getattr(class_cache, "DEFAULT_ENV_VARS", {}).pop("PL_DISABLE_FORK", None)


@contextmanager
def _ray(address: str | None, *, verbose: bool, meanwhile: Callable[[], T]) -> Iterator[T]:
    """Ray for the sweep (started in-process, or the cluster at `address`) and what
    `meanwhile` returns. `meanwhile` runs in a thread while Ray starts, which is mostly
    waiting for Ray's processes: seconds a sweep no longer spends one after the other.
    Ray itself starts on this thread: the processes it starts die with their thread."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = meanwhile()
        except BaseException as error:  # re-raised on this thread, once Ray is down again
            outcome["error"] = error

    preparing = threading.Thread(target=run, name="sweep-prepare")
    preparing.start()
    try:
        if not verbose:
            # Tune's newer console output prints its banner even when told to be silent.
            os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        started_ray = connect_ray(address, verbose=verbose)
    finally:
        preparing.join()
    try:
        if "error" in outcome:
            raise outcome["error"]
        yield outcome["value"]
    finally:
        if started_ray:
            stop_own_ray()


def check_tracking_reachable(tracking_uri: str) -> None:
    from sweeps import tracking

    try:
        tracking.probe(tracking_uri)
    except Exception as error:  # MLflow raises many types for a store it cannot reach
        raise SweepError(f"cannot reach the MLflow tracking store at {tracking_uri}: {_first_line(error)}") from None


def resolved_storage_path(path: str) -> str:
    return path if is_uri(path) else str(Path(path).expanduser().resolve())


def check_storage_writable(storage_path: str) -> None:
    """storage.path must take files (checkpoints, the journal) before any trial starts."""
    if is_uri(storage_path):
        return  # object stores answer with their own errors; credentials may only exist on the nodes
    # Try the nearest folder that exists: creating the path itself would leave it
    # behind when a later check refuses the sweep. (os.access says yes to root.)
    existing = next(parent for parent in (Path(storage_path), *Path(storage_path).parents) if parent.exists())
    if not existing.is_dir():
        raise SweepError(f"storage.path: cannot write to {storage_path}: {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise SweepError(f"storage.path: cannot write to {storage_path}: {error.strerror or error}") from None


def load_sweep_data(config: SweepConfig) -> Any:
    """The sweep's data set, loaded and split once; SweepError names the field when it cannot be."""
    from sweeps.data import DataError, DataSpec, load_split

    data = config.data
    spec = DataSpec(
        dataset=data.dataset,
        root=data.root,
        download=data.download,
        image_size=data.image_size,
        num_examples=data.synthetic.num_examples,
        num_classes=data.synthetic.num_classes,
        shape=tuple(data.synthetic.shape),
    )
    try:
        return load_split(spec, val_fraction=data.val_fraction, preprocess=data.preprocess, seed=config.search.seed, max_examples=data.max_examples)
    except DataError as error:
        raise SweepError(f"{error.field}: {error}") from None


def trial_settings(config: SweepConfig) -> Any:
    from sweeps.trial_settings import DiagnosticsSettings, TrialSettings

    return TrialSettings(
        arch=config.model.arch,
        model_options=config.model.model_dump(exclude={"arch"}),
        epochs=config.train.epochs,
        optimizer=config.train.optimizer,
        threads=max(1, int(config.resources.cpus_per_trial)),
        seed=config.search.seed,
        checkpoint_every=config.train.checkpoint_every,
        checkpoint_min_interval_s=config.train.checkpoint_min_interval_s,
        device=config.train.device,
        precision=config.train.precision,
        diagnostics=DiagnosticsSettings(
            enabled=config.diagnostics.enabled,
            every_n_steps=config.diagnostics.every_n_steps,
            activations_every_n_steps=config.diagnostics.activations_every_n_steps,
            low=config.diagnostics.update_ratio.low,
            high=config.diagnostics.update_ratio.high,
            patience=config.diagnostics.update_ratio.patience,
            stop_on=config.diagnostics.stop_on,
            histogram_epochs=frozenset(epochs_a_trial_may_end(config)),
        ),
    )


def epochs_a_trial_may_end(config: SweepConfig) -> list[int]:
    """The last epoch, and with ASHA each rung (grace_period * reduction_factor^k) where it may stop a trial."""
    epochs = [config.train.epochs]
    if config.early_stopping.scheduler == "asha":
        rung = config.early_stopping.grace_period
        while rung < config.train.epochs:
            epochs.append(math.ceil(rung))  # Tune decides at the first report at or past a rung
            rung *= config.early_stopping.reduction_factor
    return sorted(set(epochs))


# Filesystems that other machines can mount too (from /proc/mounts' type column).
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "lustre", "glusterfs", "ceph", "gpfs", "beegfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs")


def is_uri(path: str) -> bool:
    return "://" in path


def check_storage_reaches_every_node(config: SweepConfig) -> None:
    """Refuse a node-local storage path on a multi-node cluster, before any trial starts:
    trials on the other nodes would write their checkpoints where no one can read them."""
    import ray

    path = config.storage.path
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) < 2 or is_uri(path) or config.storage.shared or _on_network_filesystem(Path(path).expanduser().resolve()):
        return
    raise SweepError(
        f"storage.path: {path} is on this machine's own disk, but the Ray cluster has {len(nodes)} nodes; "
        "use a URI (s3://..., gs://...) or a filesystem every node mounts, and set storage.shared: true for the latter"
    )


def _on_network_filesystem(path: Path) -> bool:
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return False
    candidates = [(mount, fstype) for mount, fstype in mounts if path == Path(mount) or Path(mount) in path.parents]
    if not candidates:
        return False
    _, fstype = max(candidates, key=lambda item: len(item[0]))
    return fstype in NETWORK_FILESYSTEMS


def _scheduler(config: SweepConfig) -> Any:
    if config.early_stopping.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=config.train.epochs,
        grace_period=config.early_stopping.grace_period,
        reduction_factor=config.early_stopping.reduction_factor,
    )


def connect_ray(address: str | None, *, verbose: bool) -> bool:
    """Start Ray in-process, or join the cluster at `address`; True if we must shut it down (stop_own_ray)."""
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=verbose,
            logging_level=logging.INFO if verbose else logging.ERROR,
        )
    except (ConnectionError, RuntimeError, ValueError) as error:
        hint = ""
        if address and "RAY_AUTH_MODE" not in os.environ and _has_ray_auth_token():
            # Ray sends its token to an explicit address only when told to, on purpose.
            hint = " (clusters from `ray start` require token authentication: set RAY_AUTH_MODE=token)"
        raise SweepError(f"cannot connect to the Ray cluster at {address}: {_first_line(error)}{hint}") from None
    return True


def stop_own_ray() -> None:
    """ray.shutdown() for a Ray that connect_ray started, a second sooner. Ray stops its
    processes one kind at a time, the GCS before the autoscaler's monitor, whose SIGTERM
    handler then tries to report to the gone GCS until Ray kills it after a 1 s wait
    (bench/RESULTS.md). On one machine the monitor has nothing to clean up, so it is
    killed first, as Ray would after the wait. If Ray's internals moved, Ray stops it as before."""
    import ray

    try:
        from ray._private import ray_constants, worker

        worker._global_node._kill_process_type(ray_constants.PROCESS_TYPE_MONITOR, allow_graceful=False, check_alive=False, wait=True)
    except (AttributeError, ImportError, TypeError):
        pass
    ray.shutdown()


def check_ray_reachable(address: str | None) -> None:
    """Ray retries an address that does not answer for minutes, with a warning every few
    seconds; a quick TCP connect gives the user one clear line instead."""
    if not address or address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # let Ray resolve it (and explain what it cannot)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise SweepError(f"cannot connect to the Ray cluster at {address}: {error.strerror or error}") from None


def _has_ray_auth_token() -> bool:
    return bool(
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").exists()
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
