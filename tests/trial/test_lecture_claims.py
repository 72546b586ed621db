"""The CS231n lecture's claims about initialization and batch norm, checked on the real modules.

As in the lecture: a 10-layer, 500-wide MLP, forward pass on unit-gaussian input,
looking at the spread of each hidden layer's activations.
"""

from __future__ import annotations

import math

import pytest
import torch

from models import build_model, get_activation


def hidden_activation_stds(activation: str, init: str, *, batch_norm: bool = False) -> list[float]:
    torch.manual_seed(0)
    model = build_model(
        "mlp",
        input_shape=(500,),
        num_classes=10,
        hidden=[500] * 10,
        activation=activation,
        init=init,
        batch_norm=batch_norm,
    )
    stds: list[float] = []
    act_class = get_activation(activation)
    for module in model.modules():
        if isinstance(module, act_class):
            module.register_forward_hook(
                lambda _module, _inputs, output: stds.append(output.std().item())
            )
    with torch.no_grad():
        model(torch.randn(1000, 500))
    assert len(stds) == 10
    return stds


def per_layer_ratio(stds: list[float]) -> float:
    """The geometric mean of std(layer k+1) / std(layer k)."""
    return (stds[-1] / stds[0]) ** (1 / (len(stds) - 1))


def test_small_random_init_collapses_activations_towards_zero():
    stds = hidden_activation_stds("tanh", "small_random")
    assert stds[-1] < 1e-3 * stds[0]  # orders of magnitude below the first layer
    assert all(later < earlier for earlier, later in zip(stds, stds[1:], strict=False))


def test_xavier_keeps_the_spread_with_tanh():
    stds = hidden_activation_stds("tanh", "xavier")
    assert 0.5 < stds[-1] / stds[0] < 2
    assert min(stds) > 0.2  # not collapsed, not all saturated at +-1 either
    assert max(stds) < 0.95


def test_xavier_with_relu_halves_the_std_every_layer_or_two():
    ratio = per_layer_ratio(hidden_activation_stds("relu", "xavier"))
    assert 0.5 <= ratio <= 1 / math.sqrt(2) * 1.1


def test_he_with_relu_keeps_the_spread():
    stds = hidden_activation_stds("relu", "he")
    assert 0.6 < stds[-1] / stds[0] < 1.6


@pytest.mark.parametrize("init", ["small_random", "xavier"])
def test_batch_norm_rescues_a_bad_init(init):
    stds = hidden_activation_stds("relu", init, batch_norm=True)
    assert 0.6 < stds[-1] / stds[0] < 1.6


def test_batch_norm_in_training_mode_gives_zero_mean_unit_std_features():
    model = build_model(
        "mlp", input_shape=(20,), num_classes=3, hidden=[50], activation="relu", batch_norm=True
    )
    model.train()
    x = 5 + 3 * torch.randn(256, 20)
    normalized = model.layers[1](model.layers[0](x))
    assert normalized.mean(dim=0).abs().max() < 1e-5
    assert (normalized.std(dim=0, unbiased=False) - 1).abs().max() < 1e-3


def test_leaky_relu_passes_gradient_for_negative_inputs_and_relu_does_not():
    x = -torch.rand(10) - 0.1
    for name, expected in (("leaky_relu", 0.01), ("relu", 0.0)):
        inputs = x.clone().requires_grad_(True)
        get_activation(name)()(inputs).sum().backward()
        assert torch.allclose(inputs.grad, torch.full_like(x, expected))


def test_maxout_keeps_the_largest_of_two_pieces_per_unit():
    maxout = get_activation("maxout")()
    pieces = torch.tensor([[1.0, 3.0, -2.0, -5.0]])
    assert torch.equal(maxout(pieces), torch.tensor([[3.0, -2.0]]))
