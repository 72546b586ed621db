"""The sweep file's rules for transfer learning: the backbone's own preprocessing by default,
and a normalization for it to apply."""

from __future__ import annotations

from typing import Any

from models.backbone_weights import IMAGENET_EXAMPLE, is_weights_name

IMAGENET_NORMALIZATION = (
    "data.normalization: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}"
)


def wants_backbone_preprocess(model: Any) -> bool:
    """A pretrained backbone expects the inputs it was trained on, not the new data's statistics:
    `data.preprocess` left unset means `backbone` for it."""
    return model.arch == "pretrained" and model.weights is not None


def normalization_problems(config: Any) -> list[tuple[str, str]]:
    """`preprocess: backbone` has a normalization to apply: the file's, or the named weights'
    own."""
    data, model = config.data, config.model
    if data.normalization is not None:
        mean, std = data.normalization.mean, data.normalization.std
        return (
            []
            if len(mean) == len(std)
            else [
                (
                    "data.normalization",
                    f"needs as many std as mean values, got {len(std)} and {len(mean)}",
                )
            ]
        )
    if data.preprocess != "backbone" or (
        wants_backbone_preprocess(model) and is_weights_name(model.weights)
    ):
        return []
    if wants_backbone_preprocess(model):
        why = (
            f"model.weights {model.weights} is a state_dict file, which does not record how "
            "its training images were normalized"
        )
    else:
        why = (
            "data.preprocess: backbone applies pretrained weights' normalization, and "
            f"model.weights names none (e.g. {IMAGENET_EXAMPLE})"
        )
    return [
        (
            "data.normalization",
            f"{why}; state it, e.g. {IMAGENET_NORMALIZATION} for ImageNet weights, or choose "
            "another data.preprocess",
        )
    ]
