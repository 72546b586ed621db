"""Transfer learning: a torchvision backbone with its own weights, a new head, and the top blocks
unfrozen.

The frozen part in front of the first block that trains always gives the same output for
an image, so it can be computed once (`frozen_features`) and cut off (`cut_frozen_prefix`):
the cut model takes those features and trains exactly as the whole one would.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.backbone_weights import is_weights_name
from models.blocks import Parts


def load_backbone(name: str, weights: str | None) -> nn.Module:
    """torchvision model `name` with `weights`: a torchvision weights name (fetched, or from
    the torch hub cache), a state_dict file, or None for random init."""
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"unknown backbone {name!r}; choose from torchvision's classification models, e.g. "
            "resnet18"
        )
    if weights is None or is_weights_name(weights):
        return torchvision.models.get_model(name, weights=weights)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model.weights: no state_dict file {weights} (nor a torchvision weights name such "
            "as ResNet18_Weights.IMAGENET1K_V1)"
        )
    model = torchvision.models.get_model(name, weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def _head_slot(backbone: nn.Module) -> tuple[nn.Module, str]:
    """Where the classifier sits: `fc` (ResNets) or the last layer of `classifier`."""
    if isinstance(getattr(backbone, "fc", None), nn.Linear):
        return backbone, "fc"
    classifier = getattr(backbone, "classifier", None)
    if isinstance(classifier, nn.Sequential) and isinstance(classifier[-1], nn.Linear):
        return classifier, str(len(classifier) - 1)
    if isinstance(classifier, nn.Linear):
        return backbone, "classifier"
    raise ValueError(
        f"cannot find the classifier of backbone {type(backbone).__name__}; supported: models "
        "with `fc` or `classifier`"
    )


def _first_conv(backbone: nn.Module) -> nn.Conv2d:
    return next(module for module in backbone.modules() if isinstance(module, nn.Conv2d))


class _Caught(Exception):
    """Ends a forward pass once the frozen prefix's output is caught."""


class Pretrained(nn.Module):
    """A backbone whose last linear layer is replaced for `num_classes`.

    Everything but the top `trainable_layers` blocks and the new head is frozen:
    no gradients, no optimizer state, and batch norm kept in eval mode so its
    running statistics stay those of the pretraining data. The backbone's children
    in front of the first one that trains (`frozen_prefix` of them) run in eval mode
    too, parameter-free ones included, so their output depends on the image alone.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        parts: Parts,
        backbone: str = "resnet18",
        weights: str | None = None,
        trainable_layers: int = 0,
        min_input_size: int = 32,
    ) -> None:
        super().__init__()
        self.backbone = load_backbone(backbone, weights)
        owner, slot = _head_slot(self.backbone)
        old_head: nn.Linear = getattr(owner, slot)
        head = parts.linear(old_head.in_features, num_classes, activation="linear")
        setattr(owner, slot, head)
        self.expected_channels = _first_conv(self.backbone).in_channels
        self.min_input_size = min_input_size
        if input_shape[0] not in (1, self.expected_channels):
            raise ValueError(
                f"backbone {backbone} takes {self.expected_channels} channels, got {input_shape[0]}"
            )
        self.blocks = [
            block
            for name, block in self.backbone.named_children()
            if block is not head and any(True for _ in block.parameters())
        ]
        self.frozen = self.blocks[: max(0, len(self.blocks) - trainable_layers)]
        for block in self.frozen:
            block.requires_grad_(False)
        # a classifier block frozen around the new head (VGG's) must not freeze it
        head.requires_grad_(True)
        children = list(self.backbone.children())
        self.frozen_prefix = next(
            index
            for index, child in enumerate(children)
            if any(p.requires_grad for p in child.parameters())
        )
        self.frozen += [
            child for child in children[: self.frozen_prefix] if child not in self.frozen
        ]
        self.takes_features = False

    def train(self, mode: bool = True) -> Pretrained:
        super().train(mode)
        for block in self.frozen:
            block.eval()
        return self

    def backbone_input(self, x: Tensor) -> Tensor:
        """Images as the backbone takes them: grayscale repeated to its channels, small ones resized
        up."""
        if x.shape[1] != self.expected_channels:
            # grayscale to the RGB the backbone learned
            x = x.expand(-1, self.expected_channels, -1, -1)
        if min(x.shape[-2:]) < self.min_input_size:
            x = F.interpolate(
                x,
                size=(self.min_input_size, self.min_input_size),
                mode="bilinear",
                align_corners=False,
            )
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x if self.takes_features else self.backbone_input(x))

    @torch.no_grad()
    def frozen_features(self, x: Tensor) -> Tensor:
        """The frozen prefix's output for images `x`: what the first child that trains receives,
        caught on its way in (functional steps between children, like a flatten, included)."""
        caught: list[Tensor] = []

        def catch(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            caught.append(inputs[0])
            raise _Caught  # the rest of the forward pass is not needed

        first_trained = list(self.backbone.children())[self.frozen_prefix]
        hook = first_trained.register_forward_pre_hook(catch)
        try:
            self(x)
        except _Caught:
            pass
        finally:
            hook.remove()
        return caught[0]

    def cut_frozen_prefix(self) -> None:
        """From now on take `frozen_features`' output instead of images: the frozen prefix becomes
        identities."""
        for name, _ in list(self.backbone.named_children())[: self.frozen_prefix]:
            setattr(self.backbone, name, nn.Identity())
        self.takes_features = True
