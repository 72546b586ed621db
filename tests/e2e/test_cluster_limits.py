"""What only the cluster can tell, refused before anything is written; and a sweep whose alert
receiver never answers still ends within its bound."""

from __future__ import annotations

import time

import pytest

from tests.conftest import run_sweep_cli, sweep_runs, write_sweep
from tests.driver.events.test_webhook import Receiver, silence

pytestmark = pytest.mark.slow
SMALL = {
    "name": "limits",
    "model": {"arch": "mlp", "hidden": [16]},
    "params": {"lr": 0.05},
    "train": {"epochs": 2},
    "search": {"num_samples": 2},
}


@pytest.mark.parametrize(
    ("resources", "says"),
    [
        (
            {"gpus_per_trial": 1},
            "resources.gpus_per_trial: 1 GPUs per trial, but the Ray cluster has 1 node, the "
            "largest with 2 CPUs and 0 GPUs",
        ),
        (
            {"cpus_per_trial": 64},
            "resources.cpus_per_trial: 64 CPUs per trial, but the Ray cluster has 1 node, the "
            "largest with 2 CPUs",
        ),
    ],
    ids=["a-gpu-on-a-cluster-without-one", "more-cpus-than-any-node"],
)
def test_resources_no_node_can_give_are_refused_within_seconds_and_nothing_is_written(
    tmp_path, ray_address, resources, says
):
    path = write_sweep(tmp_path, SMALL | {"resources": resources})
    store = tmp_path / "mlflow.db"
    started = time.monotonic()
    result = run_sweep_cli(
        "run",
        str(path),
        "--address",
        ray_address,
        "--tracking-uri",
        f"sqlite:///{store}",
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert time.monotonic() - started < 60
    assert says in result.stderr and result.stderr.strip().count("\n") == 0
    assert not store.exists() and not (tmp_path / "results").exists()


def test_a_receiver_that_never_answers_delays_the_end_by_seconds_not_forever(
    tmp_path, tracking_uri, ray_address
):
    receiver = Receiver(silence)
    try:
        # lr 1e-6 makes every update far too small; with no warm-up and no patience every
        # measurement after the first epoch alerts.
        alert_at_once = {"warmup_steps": 0, "patience": 1}
        path = write_sweep(
            tmp_path,
            SMALL
            | {
                "params": {"lr": 1.0e-6},
                "train": {"epochs": 3},
                "diagnostics": {"alert_webhook": receiver.url, "update_ratio": alert_at_once},
            },
        )
        started = time.monotonic()
        result = run_sweep_cli(
            "run",
            str(path),
            "--address",
            ray_address,
            "--tracking-uri",
            tracking_uri,
            "--set",
            f"storage.path={tmp_path / 'results'}",
            cwd=tmp_path,
            timeout=300,
        )
        took = time.monotonic() - started
    finally:
        receiver.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "were not delivered to" in result.stdout + result.stderr
    _, parents, children = sweep_runs(tracking_uri, "limits")
    # several alerts queued behind the silent receiver...
    assert parents[0].data.metrics["alerts_count"] > 2
    # ...which cost at most a deadline each while training and a few seconds at the end
    assert took < 120
