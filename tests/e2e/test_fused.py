"""Fused sweeps end to end: the real CLI in a subprocess, real Ray, real MLflow; each member still
its own trial.

A person sees the same record as from an unfused sweep (one child run per trial, its params,
per-epoch metrics, diagnostics, histogram figure and status) plus the tag sweep.fused_group;
a worker killed mid-group retries the group from its checkpoint; a killed driver resumes.
"""

from __future__ import annotations

import signal

import pytest
import yaml

from sweeps.driver.planning.fusion import plan_fusion
from sweeps.driver.sweep_file.distributions import preview_trial_configs, sampled_names
from sweeps.driver.sweep_file.reading import load_sweep
from sweeps.run_names import trial_run_name
from tests.conftest import run_sweep_cli, sweep_runs
from tests.conftest import write_sweep as write_sweep_file
from tests.e2e.conftest import (
    DIGITS_SWEEP,
    SLOW_EPOCHS,
    assert_one_complete_sweep,
    experiment_of,
    logged_epochs,
    run_and_kill_a_worker,
    start_sweep_cli,
    trial_results,
    wait_until,
    write_sweep,
)

pytestmark = pytest.mark.slow

FUSED = DIGITS_SWEEP | {
    "name": "fused",
    "train": {"epochs": 4, "fuse": "auto"},
    "search": {"num_samples": 10, "max_concurrent": 2, "seed": 3},
    "resources": {"gpus_per_trial": "auto"},  # no GPU here: a share of 0, nothing probed
}


def test_a_fused_sweep_keeps_one_child_run_per_member(tmp_path, tracking_uri, ray_address):
    path = write_sweep_file(tmp_path, FUSED)
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
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_sweep(path)
    plan, note = plan_fusion(config)
    assert note in result.stdout and len(plan.groups) < 10  # fused: fewer Tune trials than trials
    assert (
        "10/10 done" in result.stdout
        and "best val_acc:" in result.stdout
        and "top 5:" in result.stdout
    )

    client, parents, children = sweep_runs(tracking_uri, "fused")
    assert len(parents) == 1 and len(children) == 10
    expected = preview_trial_configs(config.params, seed=3, num_samples=10)
    logged = [
        {key: yaml.safe_load(value) for key, value in child.data.params.items()}
        for child in children
    ]
    # the seed's trials, unchanged
    assert sorted(logged, key=lambda c: c["lr"]) == sorted(expected, key=lambda c: c["lr"])
    groups = {child.data.tags["sweep.fused_group"] for child in children}
    assert len(groups) == len(plan.groups)
    statuses = []
    for child in children:
        assert (
            child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
            and child.info.status == "FINISHED"
        )
        member = {key: yaml.safe_load(value) for key, value in child.data.params.items()}
        assert child.info.run_name == trial_run_name(
            child.data.tags["sweep.trial_id"], member, sampled_names(config.params)
        )  # as unfused
        epochs = logged_epochs(client, child.info.run_id)
        assert epochs == list(range(1, len(epochs) + 1))  # 1-based, gap-free, none twice
        for name in ("train_loss", "train_acc", "val_loss"):
            assert logged_epochs(client, child.info.run_id, name) == epochs
        status = child.data.tags["sweep.status"]
        assert status == ("completed" if len(epochs) == 4 else "early_stopped")
        statuses.append(status)
        if len(epochs) >= 2:  # 11 steps an epoch: the first measured step (every 20) is in epoch 2
            # its own diagnostics
            assert client.get_metric_history(child.info.run_id, "update_ratio/layers.0.weight")
        assert [m.step for m in client.get_metric_history(child.info.run_id, "act_std/layers.2")][
            0
        ] == 0
        assert "activation_histograms.png" in {
            item.path for item in client.list_artifacts(child.info.run_id)
        }
    # Early stopping per member, over the members of every group.
    assert "early_stopped" in statuses and "completed" in statuses
    parent = parents[0]
    assert (
        parent.data.metrics["trials_completed"] + parent.data.metrics.get("trials_early_stopped", 0)
        == 10
    )
    best = {
        run.info.run_id: max(m.value for m in client.get_metric_history(run.info.run_id, "val_acc"))
        for run in children
    }
    assert (
        best[parent.data.tags["sweep.best_run_id"]]
        == max(best.values())
        == pytest.approx(parent.data.metrics["best_val_acc"])
    ), best
    assert parent.data.params["train.fuse"] == "auto"


def test_a_killed_worker_retries_its_group_from_the_checkpoint(tmp_path, tracking_uri, ray_address):
    storage = tmp_path / "results"
    path = write_sweep(
        tmp_path, train={"epochs": 8, "fuse": 3}, search={"num_samples": 3, "max_failures": 2}
    )
    sweep, output, experiment = run_and_kill_a_worker(
        path, storage=storage, tracking_uri=tracking_uri, ray_address=ray_address, cwd=tmp_path
    )
    assert sweep.returncode == 0, output
    assert "3 completed" in output

    (lines,) = trial_results(experiment).values()  # one group: one Tune trial
    restarts = [line for line in lines if line["iterations_since_restore"] == 1]
    assert len(restarts) == 2 and restarts[1]["pid"] != restarts[0]["pid"]
    assert restarts[1]["epoch"] - 1 >= 3  # it went on from its checkpoint, not from epoch 1
    assert lines[-1]["epoch"] == 8 and lines[-1]["active"] == []
    children = assert_one_complete_sweep(tracking_uri, trials=3, epochs=8)
    assert {child.data.tags["sweep.retries"] for child in children} == {"1"}
    assert len({child.data.tags["sweep.fused_group"] for child in children}) == 1


def test_a_killed_driver_resumes_a_fused_sweep_into_the_same_runs(
    tmp_path, tracking_uri, ray_address
):
    storage = tmp_path / "results"
    epochs = 12
    path = write_sweep(
        tmp_path,
        train={"epochs": epochs, "fuse": 2},
        search={"num_samples": 4, "max_concurrent": 1},
    )
    sweep = start_sweep_cli(
        "run",
        str(path),
        "--address",
        ray_address,
        "--tracking-uri",
        tracking_uri,
        "--set",
        f"storage.path={storage}",
        cwd=tmp_path,
    )

    def part_way() -> bool:
        try:
            client, _, children = sweep_runs(tracking_uri, SLOW_EPOCHS["name"])
        except AttributeError:  # no experiment yet
            return False
        return any(
            0 < len(logged_epochs(client, child.info.run_id)) <= epochs // 2 for child in children
        )

    try:
        wait_until(part_way, timeout=240, what="a member part-way", process=sweep)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait(timeout=30)
    finally:
        sweep.kill()
    experiment = experiment_of(storage)
    _, _, children = sweep_runs(tracking_uri, SLOW_EPOCHS["name"])
    # it really was cut short
    assert any(child.data.tags["sweep.status"] == "running" for child in children)

    resumed = run_sweep_cli("resume", str(experiment), "--address", ray_address, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "4 completed" in resumed.stdout, resumed.stdout + resumed.stderr
    # no duplicate runs, no epoch twice
    assert_one_complete_sweep(tracking_uri, trials=4, epochs=epochs)
    assert experiment_of(storage) == experiment
