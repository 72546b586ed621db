"""Frozen-feature caching: training on the frozen prefix's output equals training the whole model
with
those blocks frozen, and a prefix is cached only where that holds and the features are no larger
than the image."""

from __future__ import annotations

import copy

import pytest
import torch

from sweeps.trial.building import build_trial_model
from sweeps.trial.data import DataSpec, load_split
from sweeps.trial.frozen_features import compute_frozen_features, decide_all
from sweeps.trial.training import run_training
from sweeps.trial_params import resolve_trial_params
from tests.conftest import trial_settings

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


def photos():
    return load_split(
        DataSpec("synthetic", num_examples=80, num_classes=3, shape=(3, 32, 32)),
        val_fraction=0.25,
        preprocess="standardize",
        seed=0,
    )


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("weights")


def saved_backbone(folder, backbone: str) -> str:
    """A "pretrained" backbone saved as a state_dict, with batch-norm statistics that are not the
    defaults."""
    import torchvision

    path = folder / f"{backbone}.pt"
    if not path.exists():
        torch.manual_seed(0)
        model = torchvision.models.get_model(backbone, weights=None)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture
def resnet18(weights_dir):
    def settings(epochs: int = 3, backbone: str = "resnet18", weights: str | None = "saved"):
        model = {
            "arch": "pretrained",
            "backbone": backbone,
            "weights": saved_backbone(weights_dir, backbone) if weights else None,
        }
        return trial_settings(
            {
                "model": model,
                "data": {"preprocess": "standardize"},
                "train": {"epochs": epochs, "checkpoint_min_interval_s": 0},
            }
        )

    return settings


@pytest.mark.parametrize("trainable_layers", [0, 1, 2])
def test_training_on_cached_features_equals_training_the_whole_model_with_those_blocks_frozen(
    trainable_layers, resnet18
):
    data, settings = photos(), resnet18()
    sampled = {
        "lr": 0.05,
        "trainable_layers": trainable_layers,
        "batch_size": 16,
        "weight_decay": 1e-4,
    }
    whole, cached = [], []
    run_training(
        sampled, settings, data, lambda metrics, checkpoint: whole.append((metrics, checkpoint))
    )
    features = compute_frozen_features(settings, data, trainable_layers)
    assert features.train_x.shape[0] == len(data.train_y) and features.val_x.shape[0] == len(
        data.val_y
    )
    run_training(
        sampled,
        settings,
        data,
        lambda metrics, checkpoint: cached.append((metrics, checkpoint)),
        features=features,
    )

    assert len(whole) == len(cached) == 3
    for (expected, _), (got, _) in zip(whole, cached, strict=True):
        for name in METRICS:
            assert got[name] == pytest.approx(expected[name], rel=1e-4, abs=1e-5), name
    # The weights that trained (and the top blocks' batch-norm statistics) end where the whole
    # model's did.
    whole_state, cached_state = whole[-1][1]["model"], cached[-1][1]["model"]
    trained = [name for name in cached_state if not name.endswith("num_batches_tracked")]
    assert trained and all(
        torch.allclose(cached_state[name], whole_state[name], rtol=1e-4, atol=1e-5)
        for name in trained
    ), trained
    # The whole model's frozen batch norm kept the pretrained statistics: eval mode, as the cached
    # pass ran it.
    fresh = build_trial_model(settings, resolve_trial_params(sampled), data).state_dict()
    assert torch.equal(whole_state["backbone.bn1.running_mean"], fresh["backbone.bn1.running_mean"])
    assert torch.equal(
        whole_state["backbone.layer1.0.bn1.running_var"], fresh["backbone.layer1.0.bn1.running_var"]
    )


def test_a_cached_trial_resumes_exactly(resnet18):
    data, settings = photos(), resnet18(epochs=4)
    sampled = {"lr": 0.01, "trainable_layers": 1, "batch_size": 16}
    features = compute_frozen_features(settings, data, 1)
    straight, checkpoints = [], {}

    def record(metrics, checkpoint):
        straight.append(metrics)
        if checkpoint is not None:
            # its tensors are the live ones
            checkpoints[metrics["epoch"]] = copy.deepcopy(checkpoint)

    run_training(sampled, settings, data, record, features=features)
    assert len(straight) == 4, straight[-1].get("stop_reason")
    resumed = []
    run_training(
        sampled,
        settings,
        data,
        lambda metrics, _: resumed.append(metrics),
        resume_from=checkpoints[2],
        features=features,
    )
    assert [{k: m[k] for k in METRICS} for m in resumed] == [
        {k: m[k] for k in METRICS} for m in straight[2:]
    ]


def test_a_prefix_is_cached_only_where_its_features_are_no_larger_than_the_image(resnet18):
    decisions = {
        decision.trainable_layers: decision
        for decision in decide_all(resnet18(), photos(), [0, 1, 5, 6])
    }
    assert (
        decisions[0].cached
        and decisions[0].reason == "conv1 to avgpool of resnet18 frozen, 512 numbers per image"
    )
    assert decisions[1].cached and "conv1 to layer3" in decisions[1].reason
    assert (
        not decisions[5].cached
        and "16384 numbers per image, more than the 3072" in decisions[5].reason
    )  # conv1's output at 32x32
    assert not decisions[6].cached and "nothing in front of it is frozen" in decisions[6].reason
    assert [decisions[value].frozen_prefix for value in (0, 1, 5, 6)] == [9, 7, 1, 0]
    # every trial's random backbone is its own
    (random_init,) = decide_all(resnet18(weights=None), photos(), [0])
    assert not random_init.cached and "random initialization" in random_init.reason


def test_a_backbone_whose_forward_is_not_its_blocks_in_order_is_not_cached(resnet18):
    # mobilenet_v2 pools with a function between its children, so it cannot start after `features`;
    # mobilenet_v3_small pools with a child, so it can.
    (v2,) = decide_all(resnet18(backbone="mobilenet_v2"), photos(), [0])
    assert not v2.cached and "forward pass is not its blocks in order" in v2.reason
    (v3,) = decide_all(resnet18(backbone="mobilenet_v3_small"), photos(), [0])
    assert v3.cached


def test_a_classifier_block_frozen_around_the_new_head_leaves_the_head_trainable(resnet18):
    model = build_trial_model(
        resnet18(backbone="mobilenet_v3_small"),
        resolve_trial_params({"trainable_layers": 0}),
        photos(),
    )
    assert {name for name, param in model.named_parameters() if param.requires_grad} == {
        "backbone.classifier.3.weight",
        "backbone.classifier.3.bias",
    }
