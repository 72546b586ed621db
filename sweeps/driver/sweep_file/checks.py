"""What the sweep file's schema cannot say field by field: parameters the trainer understands,
values each may take, and fields that must agree with each other. Each problem is
(dotted field, message), as ConfigError prints them."""

from __future__ import annotations

from typing import Any

from models.backbone_weights import IMAGENET_EXAMPLE, is_weights_name
from sweeps.driver.sweep_file.addresses import forbidden_target
from sweeps.driver.sweep_file.distributions import split_spec
from sweeps.driver.sweep_file.fields import did_you_mean, field_path
from sweeps.driver.sweep_file.schema import PretrainedConfig, SweepConfig
from sweeps.trial_params import ARCHITECTURE_PARAMS, TRIAL_PARAMS, check_param_value

IMAGENET_NORMALIZATION = (
    "data.normalization: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}"
)
DATASETS_WITH_ROOT = ("mnist", "fashion_mnist", "cifar10", "image_folder")


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Every parameter is one the trainer understands, and every value it may take is valid."""
    problems = []
    for name, spec in params.items():
        path = field_path(("params", name))
        if name not in TRIAL_PARAMS:
            valid = sorted(TRIAL_PARAMS)
            problems.append(
                (
                    path,
                    f"unknown parameter {name!r}{did_you_mean(name, valid)}; valid parameters: "
                    f"{valid}",
                )
            )
            continue
        if not isinstance(spec, dict):
            if (why := check_param_value(name, spec)) is not None:
                problems.append((path, why))
            continue
        split = split_spec(spec)
        assert split is not None  # a dict: one distribution, checked by the schema
        distribution, args = split
        refusal = distribution.refusal_for(TRIAL_PARAMS[name].kind, name)
        if refusal is not None:
            problems.append((f"{path}.{distribution.name}", refusal))
            continue
        for where, value in distribution.values(args):
            if (why := check_param_value(name, value)) is not None:
                problems.append((f"{path}.{where}", why))
    return problems


def check_cross_fields(config: SweepConfig) -> list[tuple[str, str]]:
    """What no single field can say: fields that must agree with each other."""
    checks = (
        _training_problems,
        _data_problems,
        _param_problems,
        _diagnostics_problems,
        _transfer_problems,
    )
    return [problem for check in checks for problem in check(config)]


def _training_problems(config: SweepConfig) -> list[tuple[str, str]]:
    problems = []
    stopping, epochs = config.early_stopping, config.train.epochs
    if stopping.scheduler == "asha" and stopping.grace_period > epochs:
        why = f"must be at most train.epochs ({epochs}), got {stopping.grace_period}"
        problems.append(("early_stopping.grace_period", why))
    metric, mode = config.search.metric, config.search.mode
    metric_is_loss = metric.endswith("loss")
    if metric_is_loss != (mode == "min"):
        expected = "min" if metric_is_loss else "max"
        problems.append(
            ("search.mode", f"{metric} is optimized with mode {expected!r}, got {mode!r}")
        )
    return problems


def _data_problems(config: SweepConfig) -> list[tuple[str, str]]:
    problems = []
    data = config.data
    if data.dataset in DATASETS_WITH_ROOT and data.root is None:
        problems.append(
            ("data.root", f"dataset {data.dataset} needs data.root, the folder that holds it")
        )
    classes = data.classes or []
    if len(set(classes)) < len(classes):
        problems.append(("data.classes", f"lists a class twice, got {classes}"))
    return problems


def _param_problems(config: SweepConfig) -> list[tuple[str, str]]:
    problems = []
    arch = config.model.arch
    for name in config.params:
        architectures = [each for each, names in ARCHITECTURE_PARAMS.items() if name in names]
        if architectures and arch not in architectures:
            why = f"only applies to model.arch: {' or '.join(architectures)}, got {arch}"
            problems.append((f"params.{name}", why))
    return problems


def _diagnostics_problems(config: SweepConfig) -> list[tuple[str, str]]:
    problems = []
    diagnostics = config.diagnostics
    webhook = diagnostics.alert_webhook
    if (
        webhook
        and not diagnostics.alert_webhook_allow_private
        and (why := forbidden_target(webhook))
    ):
        unless = (
            "alerts are not posted there unless diagnostics.alert_webhook_allow_private is true"
        )
        problems.append(("diagnostics.alert_webhook", f"{why}; {unless}"))
    band = diagnostics.update_ratio
    if band.low >= band.high:
        why = f"needs low < high, got low={band.low:g}, high={band.high:g}"
        problems.append(("diagnostics.update_ratio", why))
    return problems


def _transfer_problems(config: SweepConfig) -> list[tuple[str, str]]:
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
    weights = model.weights if isinstance(model, PretrainedConfig) else None
    if data.preprocess != "backbone" or (weights is not None and is_weights_name(weights)):
        return []
    if weights is not None:
        why = (
            f"model.weights {weights} is a state_dict file, which does not record how "
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
