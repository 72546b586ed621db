"""The one door to Ray: starting or joining it, stopping it, whether it answers, and every
workaround that reaches into Ray's internals.

Each internal access is listed in RAY_INTERNALS with the Ray version it was checked
against; tests/driver/test_ray_cluster.py fails, naming the attribute, when an upgrade
removes one, and at run time each falls back to Ray's own behaviour.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sweeps.errors import SweepError, first_line

T = TypeVar("T")
RAY_CHECKED_VERSION = "2.60.0"


class RayError(SweepError):
    """Ray could not be reached or started; the message says where and why."""


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
        raise RayError(f"cannot connect to the Ray cluster at {address}: {first_line(error)}{hint}") from None
    return True


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
        raise RayError(f"cannot connect to the Ray cluster at {address}: {error.strerror or error}") from None


def alive_node_count() -> int:
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


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


def let_trials_take_prestarted_workers() -> None:
    """Ray starts a worker process per CPU as it comes up, which boots (Python, Ray) while
    the sweep gets ready. Tune creates its trial actors with
    `runtime_env={"env_vars": {"PL_DISABLE_FORK": "1"}}`, for PyTorch Lightning, which no
    trial here uses, and a worker started without that runtime env never hosts one: each
    trial worker was a new process (bench/RESULTS.md). Without the variable the trials
    take the workers Ray started."""
    env_vars = _internal("Tune's actor env vars")
    if env_vars is not None:
        env_vars.pop("PL_DISABLE_FORK", None)


def recorded_checkpoint(trial: Any) -> Any | None:
    """The checkpoint Tune will restore `trial` from (None if it has none)."""
    result = _internal("a trial's latest checkpoint result", trial)
    return None if result is None else result.checkpoint


def restore_from_epoch(trial: Any, metrics: dict[str, Any]) -> None:
    """Tell Tune that `trial`'s recorded checkpoint now holds the epoch in `metrics`:
    one report per epoch, so Tune's iteration count is the epoch (ASHA and MLflow go by it)."""
    result = _internal("a trial's latest checkpoint result", trial)
    if result is not None:
        result.metrics = result.metrics | metrics | {"training_iteration": metrics["epoch"]}


def _kill_monitor_accessor() -> Callable[[], None]:
    from ray._private import ray_constants, worker

    kill = worker._global_node._kill_process_type
    monitor = ray_constants.PROCESS_TYPE_MONITOR
    return lambda: kill(monitor, allow_graceful=False, check_alive=False, wait=True)


def _tune_actor_env_vars() -> dict[str, str]:
    from ray.tune.execution import class_cache

    return class_cache.DEFAULT_ENV_VARS


def _latest_checkpoint_result(trial: Any) -> Any:
    result = trial.latest_checkpoint_result  # Ray's internal _TrainingResult (or None)
    if result is not None:
        result.checkpoint, result.metrics  # noqa: B018 -- the attributes this module uses
    return result


# name -> (how to reach it, what it is, in Ray RAY_CHECKED_VERSION)
RAY_INTERNALS: dict[str, tuple[Callable[..., Any], str]] = {
    "autoscaler monitor": (
        _kill_monitor_accessor,
        "ray._private.worker._global_node._kill_process_type and ray._private.ray_constants.PROCESS_TYPE_MONITOR",
    ),
    "Tune's actor env vars": (_tune_actor_env_vars, "ray.tune.execution.class_cache.DEFAULT_ENV_VARS"),
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
