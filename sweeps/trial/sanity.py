"""The lecture's sanity checks before a sweep: initial loss, overfitting a tiny subset, finite
gradients."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sweeps.trial.building import build_optimizer, build_trial_model, trial_seed
from sweeps.trial.data import SplitData
from sweeps.trial_params import resolve_trial_params
from sweeps.trial_settings import TrialSettings

INITIAL_LOSS_TOLERANCE = 0.25  # relative to ln(num_classes)
OVERFIT_EXAMPLES = 20
OVERFIT_MAX_STEPS = 500
OVERFIT_LR = 1e-3


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    measured: str
    expected: str
    curve: tuple[
        float, ...
    ] = ()  # the overfit check's training loss, step by step (what `sweep lecture` draws)


def run_sanity_checks(
    sampled: dict[str, Any], settings: TrialSettings, data: SplitData[np.ndarray]
) -> list[CheckResult]:
    params = resolve_trial_params(sampled)
    on_cpu = data.to(torch.device("cpu"))
    return [
        check_initial_loss(params, settings, on_cpu),
        check_overfit_tiny_subset(params, settings, on_cpu),
        check_gradients_finite(params, settings, on_cpu),
    ]


def _fresh_model(
    params: dict[str, Any], settings: TrialSettings, data: SplitData[torch.Tensor]
) -> torch.nn.Module:
    torch.manual_seed(trial_seed(params, settings.seed))
    return build_trial_model(settings, params, data)


def check_initial_loss(
    params: dict[str, Any], settings: TrialSettings, data: SplitData[torch.Tensor]
) -> CheckResult:
    """With small logits a C-class softmax starts at loss ln(C). Regularization is off
    here anyway: weight decay lives in the optimizer, not in the loss."""
    model = _fresh_model(params, settings, data)
    model.train()
    with torch.no_grad():
        loss = F.cross_entropy(model(data.inputs(data.train_x[:256])), data.train_y[:256]).item()
    expected = math.log(data.num_classes)
    passed = math.isfinite(loss) and abs(loss - expected) <= INITIAL_LOSS_TOLERANCE * expected
    return CheckResult(
        "initial loss",
        passed,
        f"{loss:.3f}",
        f"ln({data.num_classes}) = {expected:.3f} (within {INITIAL_LOSS_TOLERANCE:.0%})",
    )


def check_overfit_tiny_subset(
    params: dict[str, Any], settings: TrialSettings, data: SplitData[torch.Tensor]
) -> CheckResult:
    """A model that cannot memorize 20 examples has a bug or too little capacity.

    Adam at a fixed 1e-3 without weight decay, so the check is about the model and
    data, not about the learning rate the sweep is searching for."""
    model = _fresh_model(params, settings, data)
    model.train()
    optimizer = build_optimizer(model, name="adam", lr=OVERFIT_LR, momentum=0.0, weight_decay=0.0)
    x, y = data.inputs(data.train_x[:OVERFIT_EXAMPLES]), data.train_y[:OVERFIT_EXAMPLES]
    accuracy, steps, losses = 0.0, 0, []
    while steps < OVERFIT_MAX_STEPS:
        steps += 1
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        losses.append(loss.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        accuracy = (logits.argmax(1) == y).float().mean().item()
        if accuracy == 1.0:
            break
    return CheckResult(
        f"overfit {len(y)} examples",
        accuracy == 1.0,
        f"train accuracy {accuracy:.1%} after {steps} steps",
        f"100% within {OVERFIT_MAX_STEPS} steps (adam, lr {OVERFIT_LR:g})",
        curve=tuple(losses),
    )


def check_gradients_finite(
    params: dict[str, Any], settings: TrialSettings, data: SplitData[torch.Tensor]
) -> CheckResult:
    model = _fresh_model(params, settings, data)
    model.train()
    loss = F.cross_entropy(model(data.inputs(data.train_x[:256])), data.train_y[:256])
    loss.backward()
    grads = [param.grad for param in model.parameters() if param.grad is not None]
    bad = sum(not torch.isfinite(grad).all().item() for grad in grads)
    norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(grad) for grad in grads])
    ).item()
    return CheckResult(
        "gradients finite",
        bad == 0 and len(grads) > 0,
        f"{len(grads) - bad}/{len(grads)} parameter tensors finite, total norm {norm:.2e}",
        "all finite",
    )
