"""Ctrl-C and friends, for real: SIGINT, SIGTERM and SIGHUP sent to a running `sweep run`, then
`sweep resume`; a second Ctrl-C; a signal before training; two drivers of one sweep at once."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from tests.conftest import run_sweep_cli, sweep_runs
from tests.e2e.conftest import (
    assert_one_complete_sweep,
    experiment_of,
    start_sweep_cli,
    trial_results,
    wait_until,
    write_sweep,
)

pytestmark = pytest.mark.slow
EPOCHS = 6


def start_sweep(tmp_path, tracking_uri, ray_address) -> tuple[subprocess.Popen, list[str]]:
    path = write_sweep(
        tmp_path, train={"epochs": EPOCHS}, search={"num_samples": 4, "max_concurrent": 2}
    )
    common = [
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={tmp_path / 'results'}",
    ]
    return start_sweep_cli("run", str(path), *common, cwd=tmp_path), common


def wait_for_a_trial_midway(sweep, tmp_path) -> None:
    """Until Tune's own record (written as each epoch is reported, not a second later as MLflow
    is) shows a trial with at least three epochs still to go: a signal then lands mid-sweep."""

    def midway() -> bool:
        experiment = experiment_of(tmp_path / "results")
        lines = trial_results(experiment).values() if experiment is not None else []
        return any(0 < len(results) <= EPOCHS - 3 for results in lines)

    wait_until(midway, timeout=240, what="a trial part-way through", process=sweep)


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_a_signal_mid_sweep_records_an_interruption_that_resume_finishes(
    tmp_path, tracking_uri, ray_address, signum, code
):
    sweep, _ = start_sweep(tmp_path, tracking_uri, ray_address)
    try:
        wait_for_a_trial_midway(sweep, tmp_path)
        sweep.send_signal(signum)
        output, _ = sweep.communicate(timeout=120)
    finally:
        sweep.kill()
    name = signal.Signals(signum).name
    assert sweep.returncode == code, output
    assert f"interrupted by {name}" in output and "Traceback" not in output
    assert "*** SIGTERM received" not in output and "Stack trace" not in output  # Ray's C++ dump
    experiment = experiment_of(tmp_path / "results")
    assert f"continue it with:  sweep resume {experiment}" in output

    client, parents, children = sweep_runs(tracking_uri, "resilient")
    (parent,) = parents
    assert parent.info.status == "KILLED" and parent.data.tags["sweep.state"] == "interrupted"
    assert parent.data.tags["sweep.stop_reason"] == f"interrupted by {name}"
    assert children and not any(child.info.status == "RUNNING" for child in children)
    interrupted = [child for child in children if child.data.tags["sweep.status"] == "interrupted"]
    assert interrupted and all(child.info.status == "KILLED" for child in interrupted)
    assert json.loads((experiment / "sweep.json").read_text())["finished"] is False
    assert not (experiment / "sweep.lock").exists()  # the driver let go of the sweep

    if signum != signal.SIGINT:
        return  # the signals differ in how the sweep stops, not in how it goes on: resumed once
    resumed = run_sweep_cli("resume", str(experiment), "--address", ray_address, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "4 completed" in resumed.stdout
    # every epoch once, no duplicate run
    assert_one_complete_sweep(tracking_uri, trials=4, epochs=EPOCHS)


def test_a_second_ctrl_c_leaves_at_once(tmp_path, tracking_uri, ray_address):
    sweep, _ = start_sweep(tmp_path, tracking_uri, ray_address)
    try:
        wait_for_a_trial_midway(sweep, tmp_path)
        sweep.send_signal(signal.SIGINT)
        time.sleep(0.05)
        sweep.send_signal(signal.SIGINT)
        started = time.monotonic()
        output, _ = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert sweep.returncode == 130, output
    assert time.monotonic() - started < 10
    assert "Traceback" not in output


def signal_on_line(sweep: subprocess.Popen, line_start: str, signum: int) -> str:
    """Send `signum` the moment the sweep prints a line starting with `line_start` (after its
    time stamp); return everything it printed."""
    seen = []
    for line in sweep.stdout:
        seen.append(line)
        if line.partition("] ")[2].startswith(line_start):
            sweep.send_signal(signum)
            break
    rest, _ = sweep.communicate(timeout=60)
    return "".join(seen) + rest


def test_a_signal_before_training_exits_130_and_writes_nothing(tmp_path):
    # Ray starts in the process (no --address): seconds during which no trial can start.
    path = write_sweep(tmp_path)
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    sweep = start_sweep_cli(
        "run",
        str(path),
        "--tracking-uri",
        f"sqlite:///{store}",
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    try:
        output = signal_on_line(sweep, "starting Ray on this machine", signal.SIGINT)
    finally:
        sweep.kill()
    assert sweep.returncode == 130, output
    assert "SIGINT" in output and "Traceback" not in output and "Aborted" not in output
    assert list(store.parent.iterdir()) == [] and not (tmp_path / "results").exists(), output


def test_a_signal_as_the_sweep_opens_leaves_no_run_running_and_nothing_to_resume(tmp_path):
    # The awkward moment: Ray is up and the experiment folder, parent run and journal are
    # being made. Either none of them exists afterwards or all do, the run closed.
    path = write_sweep(tmp_path)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = start_sweep_cli(
        "run",
        str(path),
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    try:
        output = signal_on_line(sweep, "Ray is up", signal.SIGTERM)
    finally:
        sweep.kill()
    assert sweep.returncode == 143, output
    assert "SIGTERM" in output and "Traceback" not in output and "Stack trace" not in output
    if not (tmp_path / "mlflow.db").exists():
        return  # the signal came before the parent run was opened: nothing was
    _, parents, children = sweep_runs(tracking_uri, "resilient")
    assert all(run.info.status != "RUNNING" for run in [*parents, *children]), output
    for parent in parents:
        assert parent.info.status == "KILLED" and parent.data.tags["sweep.state"] == "interrupted"
        experiment = experiment_of(tmp_path / "results")
        assert not (experiment / "sweep.lock").exists()
        # No trial trained: nothing for `sweep resume` to continue, and the line said `sweep run`.
        assert json.loads((experiment / "sweep.json").read_text())["finished"] is True
        assert (
            f"start it again with:  sweep run {path}" in output
            or "continue it with:  sweep resume" in output
        )


def read_lock(experiment) -> str:
    try:
        return (experiment / "sweep.lock").read_text()
    except OSError:
        return ""


def test_two_resumes_of_one_sweep_at_once_one_refuses(tmp_path, tracking_uri, ray_address):
    sweep, _ = start_sweep(tmp_path, tracking_uri, ray_address)
    try:
        wait_for_a_trial_midway(sweep, tmp_path)
        sweep.send_signal(signal.SIGKILL)  # as a dead pod leaves it: no closing at all
        sweep.wait(timeout=30)
    finally:
        sweep.kill()
    experiment = experiment_of(tmp_path / "results")
    first = start_sweep_cli("resume", str(experiment), "--address", ray_address, cwd=tmp_path)
    try:
        # The killed driver left its lock behind: wait until the first resume has taken it over.
        wait_until(
            lambda: f'"pid": {first.pid},' in read_lock(experiment),
            timeout=60,
            what="the first resume's lock",
            process=first,
        )
        second = run_sweep_cli(
            "resume", str(experiment), "--address", ray_address, cwd=tmp_path, timeout=120
        )
        output, _ = first.communicate(timeout=600)
    finally:
        first.kill()
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"pid {first.pid}" in second.stderr and "sweep resume since" in second.stderr
    assert second.stderr.strip().count("\n") == 0 and "Traceback" not in second.stderr
    assert first.returncode == 0, output
    assert_one_complete_sweep(tracking_uri, trials=4, epochs=EPOCHS)
