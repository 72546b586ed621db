"""The one door to Ray: starting or joining it, stopping it, whether it answers, and every
workaround that reaches into Ray's internals.

Each internal access is listed in RAY_INTERNALS with the Ray version it was checked
against; tests/driver/cluster/test_ray_cluster.py fails, naming the attribute, when an upgrade
removes one, and at run time each falls back to Ray's own behaviour.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ray.tune import Checkpoint
    from ray.tune.experiment import Trial

from sweeps.errors import SweepError, first_line

T = TypeVar("T")
RAY_CHECKED_VERSION = "2.60.0"


class RayError(SweepError):
    """Ray could not be reached or started; the message says where and why."""


def connect_ray(address: str | None, *, verbose: bool) -> bool:
    """Start Ray in-process, or join the cluster at `address`; True if we must shut it down
    (stop_own_ray)."""
    import ray

    if ray.is_initialized():
        return False
    # Ray reports usage to its makers unless told not to: a network request no one asked for.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        with _processes_without_cloud_probe(starting=address is None):
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
            hint = (
                " (clusters from `ray start` require token authentication: set RAY_AUTH_MODE=token)"
            )
        raise RayError(
            f"cannot connect to the Ray cluster at {address}: {first_line(error)}{hint}"
        ) from None
    return True


USAGE_LIB = "ray._common.usage.usage_lib"
PROCESS_SITE = str(Path(__file__).with_name("ray_process_site"))


@contextmanager
def _processes_without_cloud_probe(*, starting: bool) -> Iterator[None]:
    """Ray's API server (its dashboard process), which runs even with include_dashboard=False,
    asks the AWS, Azure and GCP metadata addresses which cloud it is on when it starts
    (usage_lib's get_cloud_from_metadata_requests, whatever RAY_USAGE_STATS_ENABLED says).
    The processes a Ray started here spawns get ray_process_site/ on their PYTHONPATH, whose
    sitecustomize calls silence_cloud_probe. A cluster the sweep joins is its owner's to
    configure."""
    if not starting:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PROCESS_SITE, before]))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def silence_cloud_probe() -> None:
    """In this process, Ray's cloud detection answers "unknown" without a network request.
    The module is patched as it is imported: most processes never import it."""
    import importlib.abc
    import importlib.util
    import sys

    class PatchOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            if name != USAGE_LIB:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            if spec is None or spec.loader is None:
                return spec
            load = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                load(module)
                if hasattr(module, "get_cloud_from_metadata_requests"):
                    module.get_cloud_from_metadata_requests = lambda: "unknown"

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # the patch itself
            return spec

    sys.meta_path.insert(0, PatchOnImport())


def stop_own_ray() -> None:
    """ray.shutdown() for a Ray that connect_ray started, without its wait on the monitor.
    Ray stops its processes one kind at a time, the GCS before the autoscaler's monitor,
    whose SIGTERM handler then tries to report to the gone GCS until Ray kills it after a
    wait (bench/RESULTS.md). On one machine the monitor has nothing to clean up, so it
    is killed first, as Ray would after the wait."""
    import ray

    kill_monitor = _internal("autoscaler monitor")
    if kill_monitor is not None:
        try:
            kill_monitor()
        except (AttributeError, TypeError):  # its signature changed: Ray stops it, after the wait
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
        raise RayError(
            f"cannot connect to the Ray cluster at {address}: {error.strerror or error}"
        ) from None


def alive_node_count() -> int:
    return len(_alive_nodes())


def _alive_nodes() -> list[dict[str, Any]]:
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def check_resources_fit(*, cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse, before any trial, resources no node of the cluster can ever give one trial:
    Ray would wait for them forever."""
    nodes = [node.get("Resources", {}) for node in _alive_nodes()]
    most_cpus = max((node.get("CPU", 0) for node in nodes), default=0)
    most_gpus = max((node.get("GPU", 0) for node in nodes), default=0)
    has = (
        f"the Ray cluster has {len(nodes)} node{'s' if len(nodes) != 1 else ''}, the largest "
        f"with {most_cpus:g} CPUs and {most_gpus:g} GPUs"
    )
    if gpus_per_trial > most_gpus:
        raise RayError(f"resources.gpus_per_trial: {gpus_per_trial:g} GPUs per trial, but {has}")
    if cpus_per_trial > most_cpus:
        raise RayError(f"resources.cpus_per_trial: {cpus_per_trial:g} CPUs per trial, but {has}")


def ask_tune_to_stop() -> bool:
    """Ask a running Tune experiment to end as on its own Ctrl-C: it stops the trials, saves
    its experiment state one last time and returns, so the sweep can be resumed. Tune
    listens for SIGUSR1 for this during a run (next to SIGINT, which the sweep handles
    itself); False when no Tune run is listening."""
    if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
        return False
    os.kill(os.getpid(), signal.SIGUSR1)
    return True


@contextmanager
def ray_alongside(address: str | None, *, verbose: bool, meanwhile: Callable[[], T]) -> Iterator[T]:
    """Ray for the sweep (started in-process, or the cluster at `address`) and what
    `meanwhile` returns. `meanwhile` runs in a thread while Ray starts, which is mostly
    waiting for Ray's processes: time a sweep no longer spends one thing after the other.
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


def recorded_checkpoint(trial: Trial) -> Checkpoint | None:
    """The checkpoint Tune will restore `trial` from (None if it has none)."""
    result = _internal("a trial's latest checkpoint result", trial)
    return None if result is None else result.checkpoint


def restore_from_epoch(trial: Trial, metrics: dict[str, Any]) -> None:
    """Tell Tune that `trial`'s recorded checkpoint now holds the epoch in `metrics`:
    one report per epoch, so Tune's iteration count is the epoch (ASHA and MLflow go by it)."""
    result = _internal("a trial's latest checkpoint result", trial)
    if result is not None:
        result.metrics = result.metrics | metrics | {"training_iteration": metrics["epoch"]}


def _kill_monitor_accessor() -> Callable[[], None]:
    from ray._private import ray_constants, worker

    node = worker._global_node
    if node is None:
        raise AttributeError("no Ray node started in this process")
    kill = node._kill_process_type
    monitor = ray_constants.PROCESS_TYPE_MONITOR
    return lambda: kill(monitor, allow_graceful=False, check_alive=False, wait=True)


def _tune_stops_on_sigusr1() -> bool:
    import inspect

    from ray.tune import tune as tune_module

    return "SIGUSR1" in inspect.getsource(tune_module._setup_signal_catching)


def _cloud_probe() -> Any:
    import importlib

    return importlib.import_module(USAGE_LIB).get_cloud_from_metadata_requests


def _latest_checkpoint_result(trial: Any) -> Any:
    result = trial.latest_checkpoint_result  # Ray's internal _TrainingResult (or None)
    if result is not None:
        _ = (result.checkpoint, result.metrics)  # the attributes this module uses
    return result


# name -> (how to reach it, what it is, in Ray RAY_CHECKED_VERSION)
RAY_INTERNALS: dict[str, tuple[Callable[..., Any], str]] = {
    "autoscaler monitor": (
        _kill_monitor_accessor,
        "ray._private.worker._global_node._kill_process_type and "
        "ray._private.ray_constants.PROCESS_TYPE_MONITOR",
    ),
    "Ray's cloud probe": (
        _cloud_probe,
        f"{USAGE_LIB}.get_cloud_from_metadata_requests, replaced in the processes a sweep's own "
        "Ray starts",
    ),
    "Tune's graceful stop": (
        _tune_stops_on_sigusr1,
        "ray.tune.tune._setup_signal_catching ending a run gracefully on SIGUSR1 (and "
        "TUNE_DISABLE_SIGINT_HANDLER)",
    ),
    "a trial's latest checkpoint result": (
        _latest_checkpoint_result,
        "Trial.latest_checkpoint_result, a _TrainingResult with .checkpoint and .metrics",
    ),
}


def _internal(name: str, *args: Any) -> Any | None:
    """The internal `name` of RAY_INTERNALS, or None where this Ray lacks it (then the
    caller does what Ray does on its own)."""
    reach, _ = RAY_INTERNALS[name]
    try:
        return reach(*args)
    except (AttributeError, ImportError, TypeError):
        return None


def _has_ray_auth_token() -> bool:
    return bool(
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").exists()
    )
