"""Coarse to fine: a new sweep file whose ranges are narrowed around the best trials."""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any

from sweeps.report import SweepReport
from sweeps.trial_params import TRIAL_PARAMS, check_param_value

MARGIN = 0.1  # of the old range's span, kept on each side of the top trials' values
EDGE = 0.1  # a best value within this fraction of the span from a bound is "at the edge"
WIDEN = 0.5  # how far past an edge the range grows, as a fraction of the old span


@dataclass
class Refinement:
    sweep: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def refine_sweep(sweep: dict[str, Any], report: SweepReport, *, k: int) -> Refinement:
    """Narrow every range of `sweep` (the resolved file of the sweep in `report`) around its top `k` trials."""
    top = report.top(k)
    if not top:
        raise ValueError(f"sweep {report.name} has no finished trial to refine around")
    refined = Refinement(copy.deepcopy(sweep))
    for name, spec in sweep["params"].items():
        if not isinstance(spec, dict):
            continue
        (kind, args), = spec.items()
        values = [row.params[name] for row in top if name in row.params]
        if not values:
            continue
        if kind == "choice":
            kept = [value for value in args if value in values]
            refined.sweep["params"][name] = {"choice": kept or list(args)}
        else:
            bounds = _narrow(name, kind, args, values, best=values[0], warnings=refined.warnings)
            refined.sweep["params"][name] = {kind: bounds}
    refined.sweep["name"] = _next_name(sweep["name"])
    refined.sweep["mlflow"] = dict(sweep.get("mlflow") or {}, experiment=report_experiment(sweep))
    refined.sweep["refines"] = report.parent_run_id
    return refined


def report_experiment(sweep: dict[str, Any]) -> str:
    """Refined sweeps stay in the coarse sweep's experiment, so the UI shows them side by side."""
    return (sweep.get("mlflow") or {}).get("experiment") or sweep["name"]


def _narrow(name: str, kind: str, old: list[float], values: list[float], *, best: float, warnings: list[str]) -> list[float]:
    to_axis, from_axis = (math.log10, lambda x: 10**x) if kind == "log_uniform" else (float, float)
    low, high = to_axis(old[0]), to_axis(old[1])
    span = high - low
    points = [to_axis(value) for value in values]
    new_low, new_high = max(low, min(points) - MARGIN * span), min(high, max(points) + MARGIN * span)
    where = f"{name} = {best:.3g} (the best trial's)"
    if to_axis(best) - low <= EDGE * span:
        new_low = low - WIDEN * span
        warnings.append(f"{where} is at the low edge of [{old[0]:g}, {old[1]:g}]: widening below it instead of narrowing")
    if high - to_axis(best) <= EDGE * span:
        new_high = high + WIDEN * span
        warnings.append(f"{where} is at the high edge of [{old[0]:g}, {old[1]:g}]: widening above it instead of narrowing")
    if new_high - new_low < 1e-9 * max(1.0, abs(span)):
        new_low, new_high = new_low - MARGIN * span, new_high + MARGIN * span
    bounds = [from_axis(new_low), from_axis(new_high)]
    if kind == "int_uniform":
        bounds = [math.floor(bounds[0]), max(math.ceil(bounds[1]), math.floor(bounds[0]) + 1)]
    else:
        bounds = [float(f"{bound:.4g}") for bound in bounds]
    # Past a bound the trainer refuses (lr <= 0, momentum >= 1), keep the old one.
    return [bound if name not in TRIAL_PARAMS or check_param_value(name, bound) is None else original for bound, original in zip(bounds, old)]


def _next_name(name: str) -> str:
    match = re.fullmatch(r"(.*)-refine-(\d+)", name)
    return f"{match.group(1)}-refine-{int(match.group(2)) + 1}" if match else f"{name}-refine-1"
