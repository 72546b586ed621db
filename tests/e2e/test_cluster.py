"""A real two-node Ray cluster on this machine: trials spread over both nodes; a node-local
storage path is refused before any trial starts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, run_sweep_cli

SWEEP = {
    "name": "two-nodes",
    "model": {"arch": "mlp", "hidden": [32]},
    "params": {"lr": {"log_uniform": [1.0e-2, 1.0e-1]}},
    "train": {"epochs": 2},
    "search": {"num_samples": 6, "max_concurrent": 3},
    "early_stopping": {"scheduler": "none"},
    "resources": {"cpus_per_trial": 1},
}


@pytest.fixture(scope="module")
def second_node(tmp_path_factory, ray_connected):
    """A second `ray start` node joining the session's head, with its own CPU, for this module's
    tests; gone after them."""
    import ray

    env = os.environ | {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "PYTHONPATH": str(REPO),
    }
    # A short folder: Ray's socket paths under it must fit Unix's 107-character limit.
    temp_dir = tempfile.mkdtemp(prefix="ray-node-")
    log_path = tmp_path_factory.mktemp("second-node") / "second-node.log"
    log = log_path.open("w")
    node = subprocess.Popen(
        [
            "ray",
            "start",
            f"--address={ray_connected}",
            "--block",
            "--num-cpus=1",
            "--num-gpus=0",
            f"--resources={json.dumps({'second_node': 1})}",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while sum(node_info["Alive"] for node_info in ray.nodes()) < 2:
        assert node.poll() is None, f"the second node exited: {log_path.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "the second node never joined"
        time.sleep(0.2)
    yield [
        node_info["NodeID"]
        for node_info in ray.nodes()
        if node_info["Alive"] and "second_node" in node_info["Resources"]
    ][0]
    node.terminate()
    node.wait(timeout=60)
    log.close()
    shutil.rmtree(temp_dir, ignore_errors=True)
    deadline = time.monotonic() + 120
    while sum(node_info["Alive"] for node_info in ray.nodes()) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.slow
def test_trials_run_on_both_nodes_and_local_storage_is_refused(
    tmp_path, tracking_uri, ray_address, second_node
):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    common = ["run", str(path), "--address", ray_address, "--tracking-uri", tracking_uri]

    refused = run_sweep_cli(*common, "--set", f"storage.path={tmp_path / 'local'}", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "storage.path:" in refused.stderr and "2 nodes" in refused.stderr
    assert MlflowClient(tracking_uri).get_experiment_by_name("two-nodes") is None  # nothing written
    assert not (tmp_path / "local").exists()

    # Both nodes are processes on this machine, so this path really is shared: say so.
    result = run_sweep_cli(
        *common,
        "--set",
        f"storage.path={tmp_path / 'shared'}",
        "--set",
        "storage.shared=true",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("two-nodes")
    children = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" in run.data.tags
    ]
    nodes = {run.data.tags["sweep.node_id"] for run in children}
    assert len(children) == 6 and len(nodes) == 2 and second_node in nodes


@pytest.mark.slow
def test_frozen_features_computed_once_reach_trials_on_both_nodes(
    tmp_path, tracking_uri, ray_address, second_node
):
    import torch
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "backbone.pt")
    sweep = {
        **SWEEP,
        "name": "two-nodes-features",
        "data": {
            "dataset": "synthetic",
            "synthetic": {"num_examples": 96, "num_classes": 3, "shape": [3, 32, 32]},
            "normalization": {"mean": [0.5], "std": [0.25]},
        },
        "model": {
            "arch": "pretrained",
            "backbone": "resnet18",
            "weights": str(tmp_path / "backbone.pt"),
        },
        "params": {"lr": {"log_uniform": [1.0e-3, 1.0e-2]}},
        "storage": {"path": str(tmp_path / "shared"), "shared": True},
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(sweep))
    result = run_sweep_cli(
        "run", str(path), "--address", ray_address, "--tracking-uri", tracking_uri, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # One set of features, computed by one task on one node, for the trials of both.
    assert (
        "frozen features: trainable_layers=0: cached" in result.stdout
        and "frozen features: 1 set(s)" in result.stdout
    )
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("two-nodes-features")
    children = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if "mlflow.parentRunId" in run.data.tags
    ]
    assert len(children) == 6 and all(
        run.data.tags["sweep.status"] in ("completed", "diverged") for run in children
    )
    assert second_node in {run.data.tags["sweep.node_id"] for run in children}
