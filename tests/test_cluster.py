"""A real two-node Ray cluster on this machine: trials spread over both nodes; a node-local
storage path is refused before any trial starts. Also the GPU paths, where there is a GPU."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import run_sweep_cli

SWEEP = {
    "name": "two-nodes",
    "model": {"arch": "mlp", "hidden": [32]},
    "params": {"lr": {"log_uniform": [1.0e-2, 1.0e-1]}},
    "train": {"epochs": 2},
    "search": {"num_samples": 6, "max_concurrent": 3},
    "early_stopping": {"scheduler": "none"},
    "resources": {"cpus_per_trial": 1},
}


@pytest.fixture
def second_node(tmp_path, ray_connected):
    """A second `ray start` node joining the session's head, with its own CPU; gone after the test."""
    import ray

    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    # A short folder: Ray's socket paths under it must fit Unix's 107-character limit.
    temp_dir = tempfile.mkdtemp(prefix="ray-node-")
    log = (tmp_path / "second-node.log").open("w")
    node = subprocess.Popen(
        ["ray", "start", f"--address={ray_connected}", "--block", "--num-cpus=1", "--num-gpus=0",
         f"--resources={json.dumps({'second_node': 1})}", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while sum(node_info["Alive"] for node_info in ray.nodes()) < 2:
        assert node.poll() is None, f"the second node exited: {(tmp_path / 'second-node.log').read_text()[-2000:]}"
        assert time.monotonic() < deadline, "the second node never joined"
        time.sleep(1)
    yield [node_info["NodeID"] for node_info in ray.nodes() if node_info["Alive"] and "second_node" in node_info["Resources"]][0]
    node.terminate()
    node.wait(timeout=60)
    log.close()
    shutil.rmtree(temp_dir, ignore_errors=True)
    deadline = time.monotonic() + 120
    while sum(node_info["Alive"] for node_info in ray.nodes()) > 1 and time.monotonic() < deadline:
        time.sleep(1)


@pytest.mark.slow
def test_trials_run_on_both_nodes_and_local_storage_is_refused(tmp_path, tracking_uri, ray_address, second_node):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    common = ["run", str(path), "--address", ray_address, "--tracking-uri", tracking_uri]

    refused = run_sweep_cli(*common, "--set", f"storage.path={tmp_path / 'local'}", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "storage.path:" in refused.stderr and "2 nodes" in refused.stderr
    assert MlflowClient(tracking_uri).get_experiment_by_name("two-nodes") is None  # nothing written
    assert not (tmp_path / "local").exists()

    # Both nodes are processes on this machine, so this path really is shared: say so.
    result = run_sweep_cli(*common, "--set", f"storage.path={tmp_path / 'shared'}", "--set", "storage.shared=true", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("two-nodes")
    children = [run for run in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in run.data.tags]
    nodes = {run.data.tags["sweep.node_id"] for run in children}
    assert len(children) == 6 and len(nodes) == 2 and second_node in nodes


def test_cuda_without_a_gpu_says_what_to_do():
    from sweeps.training import resolve_placement
    from sweeps.trial_settings import TrialSettings

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU, so train.device: cuda is valid here")
    with pytest.raises(RuntimeError, match="set resources.gpus_per_trial above 0"):
        resolve_placement(TrialSettings(arch="mlp", device="cuda"))
    assert resolve_placement(TrialSettings(arch="cnn", device="auto")).device.type == "cpu"


def test_bf16_autocast_trains():
    from sweeps.data import DataSpec, load_split
    from sweeps.training import run_training
    from sweeps.trial_settings import TrialSettings

    data = load_split(DataSpec("digits"), val_fraction=0.2, preprocess="per_channel_mean", seed=0)
    reports = []
    run_training({"lr": 0.05, "batch_norm": True}, TrialSettings(arch="mlp", model_options={"hidden": [64]}, epochs=2, precision="bf16"), data,
                 lambda metrics, _: reports.append(metrics))
    assert reports[-1]["val_acc"] > 0.8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine")
def test_gpu_trial_keeps_the_data_on_the_device_and_uses_channels_last():
    from sweeps.data import DataSpec, load_split
    from sweeps.training import resolve_placement, run_training
    from sweeps.trial_settings import TrialSettings

    settings = TrialSettings(arch="resnet", model_options={"widths": [16, 32]}, epochs=2, precision="bf16")
    placement = resolve_placement(settings)
    assert placement.device.type == "cuda" and placement.channels_last
    data = load_split(DataSpec("synthetic", num_examples=512, num_classes=4, shape=(3, 32, 32)), val_fraction=0.2, preprocess="standardize", seed=0)
    on_device = data.to(placement.device, memory_format=torch.channels_last)
    assert on_device.train_x.is_cuda and on_device.train_x.is_contiguous(memory_format=torch.channels_last)
    reports = []
    run_training({"lr": 0.05, "batch_norm": True}, settings, data, lambda metrics, _: reports.append(metrics))
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]
