"""The GPU peer of bench/gpu.py: a sweep file's trials written the way Ray Tune's cifar10_pytorch
example writes them.

    python bench/gpu_peer.py SWEEP_FILE --tracking-uri sqlite:///peer.db --storage DIR
    [--gpus-per-trial 0.25]

As python/ray/tune/examples/cifar10_pytorch.py does: a DataLoader over the data set's CPU
tensors, each batch moved to the GPU, the model on the GPU, a checkpoint with
`tune.report` every epoch, MLflowLoggerCallback for the runs. What it shares with the
sweep: the data (the project's loader, so the same images), the model (models.build_model,
so the same network), the trials (the same seeded sampler over the same space) and SGD with
momentum. Prints one line of JSON with its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch
import torch.nn.functional as F
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.search import BasicVariantGenerator
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import build_model
from sweeps.driver.planning.plan import load_sweep_data
from sweeps.driver.sweep_file.distributions import build_search_space
from sweeps.driver.sweep_file.reading import load_sweep
from sweeps.trial.data import SplitData


def train_model(config: dict, *, data: SplitData, model_options: dict, epochs: int) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train = TensorDataset(
        torch.from_numpy(data.train_x.copy()), torch.from_numpy(data.train_y.copy())
    )
    val = TensorDataset(torch.from_numpy(data.val_x.copy()), torch.from_numpy(data.val_y.copy()))
    train_loader = DataLoader(train, batch_size=config["batch_size"], shuffle=True, num_workers=2)
    val_loader = DataLoader(val, batch_size=config["batch_size"], num_workers=2)
    net = build_model(
        model_options["arch"],
        input_shape=data.input_shape,
        num_classes=data.num_classes,
        activation=config["activation"],
        init=config["init"],
        batch_norm=config["batch_norm"],
        **{key: value for key, value in model_options.items() if key != "arch"},
    ).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=config["lr"], momentum=config["momentum"])
    for _ in range(epochs):
        net.train()
        for inputs, labels in train_loader:
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(net(inputs), labels)
            loss.backward()
            optimizer.step()
        net.eval()
        val_loss, correct, total = 0.0, 0, 0
        with torch.no_grad():
            for inputs, labels in val_loader:
                inputs, labels = inputs.to(device), labels.to(device)
                outputs = net(inputs)
                val_loss += F.cross_entropy(outputs, labels, reduction="sum").item()
                correct += (outputs.argmax(1) == labels).sum().item()
                total += len(labels)
        with tempfile.TemporaryDirectory() as folder:
            torch.save(
                (net.state_dict(), optimizer.state_dict()), os.path.join(folder, "checkpoint.pt")
            )
            tune.report(
                {"val_loss": val_loss / total, "val_acc": correct / total},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_file")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    args = parser.parse_args()
    config = load_sweep(args.sweep_file)
    started = time.perf_counter()
    ray.init()
    trainable = tune.with_parameters(
        train_model,
        data=load_sweep_data(config),
        model_options=config.model.model_dump(),
        epochs=config.train.epochs,
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1, "gpu": args.gpus_per_trial}),
        param_space=build_search_space(config.params),
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            num_samples=config.search.num_samples,
            search_alg=BasicVariantGenerator(random_state=config.search.seed),
        ),
        run_config=tune.RunConfig(
            storage_path=args.storage,
            callbacks=[
                MLflowLoggerCallback(tracking_uri=args.tracking_uri, experiment_name="gpu-peer")
            ],
        ),
    )
    results = tuner.fit()
    ray.shutdown()
    print(
        json.dumps(
            {
                "figure": "gpu_peer",
                "wall_s": round(time.perf_counter() - started, 3),
                "errors": len(results.errors),
            }
        )
    )
    if results.errors:
        raise SystemExit(f"{len(results.errors)} trials failed: {results.errors[0]}")


if __name__ == "__main__":
    main()
