"""A multi-layer perceptron built from the registries' activation, initializer and norm."""
from __future__ import annotations

from torch import Tensor, nn

from models.activations import get_activation, pieces_per_unit
from models.initializers import initialize_layer
from models.norms import get_norm


class MLP(nn.Module):
    """Linear -> (BatchNorm) -> activation per hidden width, then a linear classifier.

    `layers` is one Sequential so parameter names read `layers.0.weight`,
    `layers.3.weight`, ... in diagnostics and MLflow.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden: list[int],
        activation: str = "relu",
        init: str = "he",
        batch_norm: bool = False,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        act_layer = get_activation(activation)
        norm_layer = get_norm(batch_norm, dims=1)
        pieces = pieces_per_unit(act_layer)
        blocks: list[nn.Module] = []
        width_in = in_features
        for width in hidden:
            linear = nn.Linear(width_in, width * pieces)
            initialize_layer(linear, init=init, activation=activation, bias_init=bias_init)
            blocks += [linear, norm_layer(width * pieces), act_layer()]
            width_in = width
        head = nn.Linear(width_in, num_classes)
        initialize_layer(head, init=init, activation="linear", bias_init=0.0)
        blocks.append(head)
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.flatten(1))
