"""Coarse to fine: what a refined sweep changes, and why, from the coarse sweep's trials compared at
one rung.

A range narrows around the best trials only where the hyperparameter importance
says the parameter matters; a choice loses a value only on evidence (see
Choice.narrow); the sweep draws with a new seed, derived from the coarse sweep's
seed and run id, so the fine sweep does not replay the coarse one's random numbers.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sweeps.driver.analysis.report import SweepReport
from sweeps.driver.sweep_file.distributions import Evidence, split_spec
from sweeps.trial_params import TRIAL_PARAMS, check_param_value


@dataclass
class Refinement:
    """The refined sweep's changed values by dotted key, and what a person should read about
    them."""

    changes: dict[str, Any]
    table: list[tuple[str, str, str, str]]  # (setting, before, after, why)
    warnings: list[str] = field(default_factory=list)
    # dotted key -> a comment written beside it
    comments: dict[str, str] = field(default_factory=dict)


def refine_sweep(sweep: dict[str, Any], report: SweepReport, *, k: int) -> Refinement:
    """What changes from `sweep` (the coarse sweep's resolved file) to its refinement around its top
    `k` trials."""
    compared = report.at_rung()
    if not compared:
        raise ValueError(f"sweep {report.name} has no trial with a result to refine around")
    matters = {item.param: item.matters for item in report.importance}
    refined = Refinement(changes={}, table=[])
    for name, spec in sweep["params"].items():
        sampled = split_spec(spec)
        if sampled is None:
            continue
        distribution, args = sampled
        evidence = Evidence(
            ranked=[row.params[name] for row in compared if name in row.params],
            top=k,
            matters=matters.get(name, False),
            rung=report.rung,
        )
        narrowed = distribution.narrow(args, evidence, name=name, valid=partial(_valid, name))
        refined.warnings += narrowed.warnings
        if narrowed.args != args:
            refined.changes[f"params.{name}"] = {distribution.name: narrowed.args}
        refined.table.append(
            (
                f"params.{name}",
                _spec_text(spec),
                _spec_text({distribution.name: narrowed.args}),
                narrowed.why,
            )
        )
    if not report.importance:
        refined.warnings.append(
            "too few trials compared at one epoch to tell which params matter: every range is kept"
        )
    _rename_and_reseed(sweep, report, refined)
    return refined


def _rename_and_reseed(sweep: dict[str, Any], report: SweepReport, refined: Refinement) -> None:
    old_seed = sweep.get("search", {}).get("seed", 0)
    seed = derived_seed(old_seed, report.parent_run_id)
    experiment = (sweep.get("mlflow") or {}).get("experiment") or sweep["name"]
    new = {
        "name": next_sweep_name(sweep["name"]),
        "search.seed": seed,
        # Refined sweeps stay in the coarse sweep's experiment, so the UI shows them side by side.
        "mlflow.experiment": experiment,
        "refines": report.parent_run_id,
    }
    refined.changes |= new
    at = f" at epoch {report.rung}" if report.rung is not None else ""
    refined.comments["refines"] = (
        f"narrowed around its top trials{at}; search.seed {seed} is derived from its seed "
        f"{old_seed} and this run id: new draws, not a replay"
    )
    refined.table += [
        ("name", sweep["name"], new["name"], "the next refinement"),
        (
            "search.seed",
            str(old_seed),
            str(seed),
            "a new seed, derived from the old one and the coarse sweep's run id",
        ),
    ]


def derived_seed(seed: int, parent_run_id: str) -> int:
    """A seed of its own for each refinement, the same every time for the same coarse sweep."""
    return zlib.crc32(parent_run_id.encode(), seed & 0xFFFFFFFF) & 0x7FFFFFFF


def _valid(name: str, value: Any) -> bool:
    return name not in TRIAL_PARAMS or check_param_value(name, value) is None


def _spec_text(spec: dict[str, Any]) -> str:
    ((kind, args),) = spec.items()
    shown = ", ".join(
        ("true" if value else "false")
        if isinstance(value, bool)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
        for value in args
    )
    return f"{kind} [{shown}]"


def format_changes(refined: Refinement) -> str:
    """The before-to-after table `sweep refine` prints."""
    header = ("setting", "before", "after", "why")
    widths = [max(len(row[column]) for row in [header, *refined.table]) for column in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in [header, *refined.table]
    ]
    return "\n".join(line.rstrip() for line in lines)


def next_sweep_name(name: str) -> str:
    match = re.fullmatch(r"(.*)-refine-(\d+)", name)
    return f"{match.group(1)}-refine-{int(match.group(2)) + 1}" if match else f"{name}-refine-1"


def free_output_path(path: str) -> str:
    """`path`, or `path` with -2, -3, ... before its suffix: the first that does not exist yet."""
    candidate, number = Path(path), 1
    while candidate.exists():
        number += 1
        candidate = Path(path).with_name(f"{Path(path).stem}-{number}{Path(path).suffix}")
    return str(candidate)
