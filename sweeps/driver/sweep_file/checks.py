"""What the sweep file's schema cannot say field by field: parameters the trainer understands,
values each may take, and fields that must agree with each other. Each problem is
(dotted field, message), as ConfigError prints them."""
from __future__ import annotations

from typing import Any

from sweeps.driver.sweep_file import transfer
from sweeps.driver.sweep_file.distributions import split_spec
from sweeps.driver.sweep_file.addresses import forbidden_target
from sweeps.driver.sweep_file.fields import did_you_mean, field_path
from sweeps.trial_params import ARCHITECTURE_PARAMS, TRIAL_PARAMS, check_param_value

from sweeps.driver.sweep_file.schema import SweepConfig

DATASETS_WITH_ROOT = ("mnist", "fashion_mnist", "cifar10", "image_folder")


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Every parameter is one the trainer understands, and every value it may take is valid."""
    problems = []
    for name, spec in params.items():
        path = field_path(("params", name))
        if name not in TRIAL_PARAMS:
            valid = sorted(TRIAL_PARAMS)
            problems.append((path, f"unknown parameter {name!r}{did_you_mean(name, valid)}; valid parameters: {valid}"))
            continue
        if not isinstance(spec, dict):
            if (why := check_param_value(name, spec)) is not None:
                problems.append((path, why))
            continue
        distribution, args = split_spec(spec)
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
    problems = []
    if config.early_stopping.scheduler == "asha" and config.early_stopping.grace_period > config.train.epochs:
        problems.append(
            (
                "early_stopping.grace_period",
                f"must be at most train.epochs ({config.train.epochs}), got {config.early_stopping.grace_period}",
            )
        )
    if config.data.dataset in DATASETS_WITH_ROOT and config.data.root is None:
        problems.append(("data.root", f"dataset {config.data.dataset} needs data.root, the folder that holds it"))
    for name in config.params:
        architectures = [arch for arch, names in ARCHITECTURE_PARAMS.items() if name in names]
        if architectures and config.model.arch not in architectures:
            problems.append((f"params.{name}", f"only applies to model.arch: {' or '.join(architectures)}, got {config.model.arch}"))
    classes = config.data.classes or []
    if len(set(classes)) < len(classes):
        problems.append(("data.classes", f"lists a class twice, got {classes}"))
    webhook = config.diagnostics.alert_webhook
    if webhook and not config.diagnostics.alert_webhook_allow_private and (why := forbidden_target(webhook)) is not None:
        problems.append(("diagnostics.alert_webhook", f"{why}; alerts are not posted there unless diagnostics.alert_webhook_allow_private is true"))
    band = config.diagnostics.update_ratio
    if band.low >= band.high:
        problems.append(("diagnostics.update_ratio", f"needs low < high, got low={band.low:g}, high={band.high:g}"))
    metric_is_loss = config.search.metric.endswith("loss")
    if metric_is_loss != (config.search.mode == "min"):
        expected = "min" if metric_is_loss else "max"
        problems.append(("search.mode", f"{config.search.metric} is optimized with mode {expected!r}, got {config.search.mode!r}"))
    return problems + transfer.normalization_problems(config)
