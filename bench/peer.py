"""The peer of bench/run.py: bench/digits.yaml's sweep written the way Ray Tune's own PyTorch
examples write it.

    python bench/peer.py --trials 16 --epochs 20 --scheduler asha --seed 0 \\
        --tracking-uri sqlite:///peer.db --storage /tmp/peer-results

Standalone on purpose (only ray, torch, scikit-learn and mlflow), in the style of
python/ray/tune/examples/cifar10_pytorch.py: the trainable loads its data, iterates a
DataLoader over a TensorDataset, and saves a checkpoint with `tune.report` every epoch;
MLflowLoggerCallback logs the trials; ASHA stops them early (or `--scheduler none`).
What it shares with bench/digits.yaml: the search space and its seeded sampler (so the
same trials), the model (3x128 MLP with the trial's activation, initializer and batch
norm), SGD with momentum and weight decay, the data (digits, 20% held out, the
training mean subtracted), ASHA's settings, 1 CPU per trial and 2 trials at a time.
The split is scikit-learn's, not the project's, so accuracies differ slightly.

MLflow content against `sweep run`: both log one run per trial with the trial's params
and train_loss, train_acc, val_loss, val_acc at every epoch. The callback also logs every
other number in a Tune result (time_this_iter_s, training_iteration, ...); `sweep run`
logs instead a parent run for the sweep, the diagnostics (update ratios every 20 steps,
activation statistics every epoch), an activation-histogram figure and status tags per
trial. So the peer writes fewer metrics and no figures.

Prints one line of JSON: wall_s (main() to the end, after the imports), ray_init_s
(ray.init() alone), fit_s (Tuner.fit()), total_epochs (the trials' training_iteration
summed) and best_val_acc (the best epoch of any trial).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import ray
import torch
import torch.nn.functional as F
from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import BasicVariantGenerator
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

if TYPE_CHECKING:
    import pandas as pd
    from ray.tune import Result, ResultGrid

# bench/digits.yaml's params, in its order: the seeded sampler then draws the same trials.
SEARCH_SPACE = {
    "lr": tune.loguniform(1e-4, 1.0),
    "weight_decay": tune.loguniform(1e-6, 1e-2),
    "activation": tune.choice(["sigmoid", "tanh", "relu", "leaky_relu", "elu", "maxout"]),
    "init": tune.choice(["small_random", "xavier", "he"]),
    "batch_norm": tune.choice([True, False]),
    "momentum": 0.9,
    "batch_size": 64,
}
HIDDEN = (128, 128, 128)
GRACE_PERIOD, REDUCTION_FACTOR = 1, 4
MAX_CONCURRENT = 2


class Maxout(nn.Module):
    """The larger of each pair of units (the layer before it is twice as wide)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, 2).amax(dim=2)


# torch.nn.init's gains by activation; elu and maxout are rectifier-like, so they take relu's.
GAINS: dict[str, Literal["sigmoid", "tanh", "relu", "leaky_relu", "linear"]] = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "linear": "linear",
}
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "elu": nn.ELU,
    "maxout": Maxout,
}


def init_weight(weight: torch.Tensor, init: str, activation: str) -> None:
    nonlinearity = GAINS.get(activation, "relu")
    if init == "small_random":
        nn.init.normal_(weight, std=0.01)
    elif init == "xavier":
        nn.init.xavier_normal_(
            weight,
            gain=nn.init.calculate_gain(nonlinearity) if activation in ("sigmoid", "tanh") else 1.0,
        )
    else:  # he
        nn.init.kaiming_normal_(
            weight, a=0.01 if activation == "leaky_relu" else 0.0, nonlinearity=nonlinearity
        )


class Net(nn.Module):
    def __init__(
        self,
        activation: str,
        init: str,
        batch_norm: bool,
        in_features: int = 64,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        pieces = 2 if activation == "maxout" else 1
        layers: list[nn.Module] = []
        for width in HIDDEN:
            linear = nn.Linear(in_features, width * pieces)
            init_weight(linear.weight, init, activation)
            nn.init.zeros_(linear.bias)
            layers += [
                linear,
                nn.BatchNorm1d(width * pieces) if batch_norm else nn.Identity(),
                ACTIVATIONS[activation](),
            ]
            in_features = width
        head = nn.Linear(in_features, num_classes)
        init_weight(head.weight, init, "linear")
        nn.init.zeros_(head.bias)
        self.layers = nn.Sequential(*layers, head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def load_data(batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    images, labels = load_digits(return_X_y=True)
    train_x, val_x, train_y, val_y = train_test_split(
        images / 16.0, labels, test_size=0.2, random_state=seed
    )
    mean = train_x.mean()
    train = TensorDataset(torch.tensor(train_x - mean, dtype=torch.float32), torch.tensor(train_y))
    val = TensorDataset(torch.tensor(val_x - mean, dtype=torch.float32), torch.tensor(val_y))
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(
        val, batch_size=batch_size
    )


def train_digits(config: dict, *, epochs: int, seed: int) -> None:
    train_loader, val_loader = load_data(config["batch_size"], seed)
    model = Net(config["activation"], config["init"], config["batch_norm"])
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config["lr"],
        momentum=config["momentum"],
        weight_decay=config["weight_decay"],
    )
    for _ in range(epochs):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for inputs, targets in train_loader:
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = F.cross_entropy(outputs, targets)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(targets)
            correct += (outputs.argmax(1) == targets).sum().item()
            seen += len(targets)
        metrics = {
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            **evaluate(model, val_loader),
        }
        with tempfile.TemporaryDirectory() as folder:
            torch.save(
                (model.state_dict(), optimizer.state_dict()), os.path.join(folder, "checkpoint.pt")
            )
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> dict[str, float]:
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for inputs, targets in loader:
        outputs = model(inputs)
        loss_sum += F.cross_entropy(outputs, targets, reduction="sum").item()
        correct += (outputs.argmax(1) == targets).sum().item()
        seen += len(targets)
    return {"val_loss": loss_sum / seen, "val_acc": correct / seen}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--scheduler", choices=["asha", "none"], default="asha")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--storage", required=True, help="Ray Tune's storage path (checkpoints).")
    return parser.parse_args()


def build_tuner(args: argparse.Namespace) -> tune.Tuner:
    """The Tuner as Ray's examples set one up: ASHA (or none), MLflow's callback, 1 CPU a trial."""
    scheduler = None
    if args.scheduler == "asha":
        scheduler = ASHAScheduler(
            max_t=args.epochs, grace_period=GRACE_PERIOD, reduction_factor=REDUCTION_FACTOR
        )
    return tune.Tuner(
        tune.with_resources(
            tune.with_parameters(train_digits, epochs=args.epochs, seed=args.seed), {"cpu": 1}
        ),
        param_space=SEARCH_SPACE,
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            num_samples=args.trials,
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(random_state=args.seed),
            max_concurrent_trials=MAX_CONCURRENT,
        ),
        run_config=tune.RunConfig(
            name=f"peer-{args.scheduler}",
            storage_path=args.storage,
            callbacks=[
                MLflowLoggerCallback(tracking_uri=args.tracking_uri, experiment_name="bench-peer")
            ],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),  # as `sweep run` keeps
        ),
    )


def epochs_trained(result: Result) -> int:
    # A grid's Result always has metrics (its trial's last result, copied); Ray types it Optional.
    return int(cast(dict[str, Any], result.metrics).get("training_iteration", 0))


def best_val_acc(result: Result) -> float:
    # A trial that succeeded reported every epoch, so its metrics' dataframe is there.
    return float(cast("pd.DataFrame", result.metrics_dataframe)["val_acc"].max())


def peer_figure(
    args: argparse.Namespace,
    results: ResultGrid,
    *,
    started: float,
    ray_up: float,
    fitted: float,
    finished: float,
) -> dict[str, object]:
    """The line main() prints, from perf_counter() read at its start, Ray up, fitted, and end."""
    # Indexed, not iterated: ResultGrid has __getitem__ and __len__ but declares no __iter__.
    trials = [results[index] for index in range(len(results))]
    succeeded = [result for result in trials if result.error is None]
    return {
        "figure": "peer",
        "scheduler": args.scheduler,
        "trials": args.trials,
        "epochs": args.epochs,
        "seed": args.seed,
        "wall_s": round(finished - started, 3),
        "ray_init_s": round(ray_up - started, 3),
        "fit_s": round(fitted - ray_up, 3),
        "total_epochs": sum(epochs_trained(result) for result in trials),
        "best_val_acc": max((best_val_acc(result) for result in succeeded), default=None),
        "errors": len(results.errors),
    }


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    ray.init()
    ray_up = time.perf_counter()
    results = build_tuner(args).fit()
    fitted = time.perf_counter()
    ray.shutdown()
    finished = time.perf_counter()
    figure = peer_figure(
        args, results, started=started, ray_up=ray_up, fitted=fitted, finished=finished
    )
    print(json.dumps(figure))
    if results.errors:  # as Ray's examples end: `assert not results.errors`
        raise SystemExit(f"{len(results.errors)} trials failed: {results.errors[0]}")


if __name__ == "__main__":
    main()
