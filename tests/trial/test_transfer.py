"""Transfer learning offline: pretrain a backbone here, save it, fine-tune its top on other data."""

from __future__ import annotations

import torch
import torchvision

from sweeps.trial.building import build_optimizer, build_trial_model
from sweeps.trial.data import DataSpec, load_split
from sweeps.trial.training import train_one_epoch
from sweeps.trial_params import resolve_trial_params
from tests.conftest import trial_settings


def test_fine_tuning_changes_the_head_and_top_block_only(tmp_path):
    torch.manual_seed(0)
    # "Pretraining": a resnet18 trained a little on one synthetic data set, saved as a state_dict.
    source = load_split(
        DataSpec("synthetic", num_examples=64, num_classes=5, shape=(3, 32, 32)),
        val_fraction=0.25,
        preprocess="none",
        seed=0,
    ).to(torch.device("cpu"))
    backbone = torchvision.models.resnet18(num_classes=1000)
    optimizer = torch.optim.SGD(backbone.parameters(), lr=0.01)
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(
            backbone(source.inputs(source.train_x)), source.train_y
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = tmp_path / "resnet18-synthetic.pt"
    torch.save(backbone.state_dict(), weights)

    # Fine-tune on another data set: grayscale 8x8 digits with 10 classes.
    target = load_split(
        DataSpec("digits"),
        val_fraction=0.2,
        preprocess="per_channel_mean",
        seed=0,
        max_examples=128,
    ).to(torch.device("cpu"))
    settings = trial_settings(
        {
            "model": {
                "arch": "pretrained",
                "backbone": "resnet18",
                "weights": str(weights),
                "min_input_size": 32,
            },
            "data": {"preprocess": "per_channel_mean"},
        }
    )
    params = resolve_trial_params({"trainable_layers": 1, "init": "xavier"})
    model = build_trial_model(settings, params, target)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    for name, value in backbone.state_dict().items():
        if not name.startswith("fc."):
            # the saved weights were loaded
            assert torch.equal(before[f"backbone.{name}"], value), name

    optimizer = build_optimizer(model, name="sgd", lr=0.05, momentum=0.9, weight_decay=0.0)
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable == {
        name
        for name in before
        if name.startswith(("backbone.layer4.", "backbone.fc."))
        and "running" not in name
        and "num_batches" not in name
    }
    # no state for frozen ones
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(trainable)

    train_one_epoch(
        model, optimizer, target, batch_size=32, generator=torch.Generator().manual_seed(0)
    )
    after = model.state_dict()
    assert after["backbone.fc.weight"].shape == (10, 512)  # a new head for the new classes
    for name, value in before.items():
        changed = not torch.equal(value, after[name])
        if name.startswith(("backbone.layer4.", "backbone.fc.")) and "num_batches" not in name:
            assert changed, f"{name} should have been fine-tuned"
        elif not name.startswith(("backbone.layer4.", "backbone.fc.")):
            # weights and batch-norm statistics alike
            assert not changed, f"{name} is frozen but changed"
    assert not any(
        param.grad is not None for name, param in model.named_parameters() if name not in trainable
    )


def test_linear_probe_trains_only_the_head():
    data = load_split(
        DataSpec("synthetic", num_examples=32, num_classes=3, shape=(3, 16, 16)),
        val_fraction=0.25,
        preprocess="none",
        seed=0,
    ).to(torch.device("cpu"))
    settings = trial_settings(
        {
            "model": {
                "arch": "pretrained",
                "backbone": "resnet18",
                "weights": None,
                "min_input_size": 32,
            }
        }
    )
    model = build_trial_model(settings, resolve_trial_params({"trainable_layers": 0}), data)
    assert {name for name, param in model.named_parameters() if param.requires_grad} == {
        "backbone.fc.weight",
        "backbone.fc.bias",
    }
