"""The model zoo: every registered part builds, trains a step, and errors list valid names."""

from __future__ import annotations

import itertools

import pytest
import torch

from models import (
    ACTIVATIONS,
    ARCHITECTURES,
    INITIALIZERS,
    build_model,
    get_activation,
    get_initializer,
)

# Every part with every other in the small models. The pretrained backbone (a resnet18) keeps its
# own blocks, so the parts reach only its new head: each part once there, not the whole product.
PARTS = list(itertools.product(sorted(ACTIVATIONS), sorted(INITIALIZERS), [False, True]))
HEAD_PARTS = [
    (activation, init, index % 2 == 1)
    for index, (activation, init) in enumerate(
        zip(sorted(ACTIVATIONS), itertools.cycle(sorted(INITIALIZERS)), strict=False)
    )
]
COMBINATIONS = [
    (arch, *parts) for arch in sorted(ARCHITECTURES) if arch != "pretrained" for parts in PARTS
]
COMBINATIONS += [("pretrained", *parts) for parts in HEAD_PARTS]
# Small versions of each architecture so the whole registry product runs in seconds.
SMALL = {
    "mlp": {"hidden": [16, 16]},
    "cnn": {"channels": [8, 16]},
    "resnet": {"widths": [8, 16]},
    "pretrained": {"backbone": "resnet18", "trainable_layers": 1},
}


@pytest.mark.parametrize(("arch", "activation", "init", "batch_norm"), COMBINATIONS)
def test_every_combination_runs_forward_and_backward(arch, activation, init, batch_norm):
    torch.manual_seed(0)
    model = build_model(
        arch,
        input_shape=(1, 8, 8),
        num_classes=10,
        activation=activation,
        init=init,
        batch_norm=batch_norm,
        **SMALL[arch],
    )
    x = torch.randn(8, 1, 8, 8)
    logits = model(x)
    assert logits.shape == (8, 10)
    logits.sum().backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 224, 224)])
def test_defaults_work_on_every_input_shape(arch, input_shape):
    model = build_model(arch, input_shape=input_shape, num_classes=7)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, *input_shape)).shape == (2, 7)


@pytest.mark.parametrize(
    ("lookup", "name", "valid"),
    [
        (get_activation, "swish", "choose from ['elu', 'leaky_relu', 'maxout'"),
        (get_initializer, "lecun", "choose from ['default', 'he'"),
    ],
)
def test_unknown_names_list_the_valid_ones(lookup, name, valid):
    with pytest.raises(ValueError, match=rf"unknown \w+ '{name}'; {valid}".replace("[", r"\[")):
        lookup(name)


def test_unknown_architecture_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown architecture 'vit'; choose from \['cnn', 'mlp'"):
        build_model("vit", input_shape=(1, 8, 8), num_classes=10)


def test_maxout_has_twice_the_weights_of_the_plain_layer():
    plain = build_model(
        "mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[32], activation="relu"
    )
    maxout = build_model(
        "mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[32], activation="maxout"
    )
    assert maxout.layers[0].weight.numel() == 2 * plain.layers[0].weight.numel()


def test_batch_norm_sits_between_linear_and_activation():
    model = build_model(
        "mlp",
        input_shape=(1, 8, 8),
        num_classes=10,
        hidden=[32],
        activation="tanh",
        batch_norm=True,
    )
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Linear", "BatchNorm1d", "Tanh", "Linear"]


def test_small_random_and_bias_init():
    model = build_model(
        "mlp",
        input_shape=(1, 8, 8),
        num_classes=10,
        hidden=[500],
        init="small_random",
        bias_init=0.01,
    )
    first = model.layers[0]
    assert abs(first.weight.std().item() - 0.01) < 0.001
    assert torch.all(first.bias == 0.01)
