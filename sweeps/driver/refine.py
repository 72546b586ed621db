"""Coarse to fine: a new sweep file whose ranges are narrowed around the best trials."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from sweeps.driver.distributions import split_spec
from sweeps.driver.report import SweepReport
from sweeps.trial_params import TRIAL_PARAMS, check_param_value


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
        sampled = split_spec(spec)
        values = [row.params[name] for row in top if name in row.params]
        if sampled is None or not values:
            continue
        distribution, args = sampled
        narrowed = distribution.narrow(args, values, best=values[0], name=name, valid=lambda value, name=name: _valid(name, value))
        refined.sweep["params"][name] = {distribution.name: narrowed.args}
        refined.warnings += narrowed.warnings
    refined.sweep["name"] = _next_name(sweep["name"])
    refined.sweep["mlflow"] = dict(sweep.get("mlflow") or {}, experiment=report_experiment(sweep))
    refined.sweep["refines"] = report.parent_run_id
    return refined


def _valid(name: str, value: Any) -> bool:
    return name not in TRIAL_PARAMS or check_param_value(name, value) is None


def report_experiment(sweep: dict[str, Any]) -> str:
    """Refined sweeps stay in the coarse sweep's experiment, so the UI shows them side by side."""
    return (sweep.get("mlflow") or {}).get("experiment") or sweep["name"]


def _next_name(name: str) -> str:
    match = re.fullmatch(r"(.*)-refine-(\d+)", name)
    return f"{match.group(1)}-refine-{int(match.group(2)) + 1}" if match else f"{name}-refine-1"
