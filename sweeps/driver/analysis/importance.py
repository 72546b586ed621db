"""How much each sampled hyperparameter explains the sweep's metric, with an uncertainty.

scikit-learn does the work: a random forest fitted to (params -> metric) over the
trials compared at one rung, and its permutation importance: how much worse the
forest predicts the metric when one parameter's column is shuffled. Fitted again on
bootstrap resamples of the trials, so each importance comes with a spread that says
how far a few trials can be trusted. log_uniform parameters enter on their log
scale, a choice by its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAPS = 20
TREES = 60
PERMUTATIONS = 4
MIN_TRIALS = 5
# A parameter "matters" when its mean importance is at least this share of the total
# and clears its own spread (a parameter the metric ignores scores near 0 +- spread).
MATTERS_SHARE = 0.1


@dataclass(frozen=True)
class Importance:
    param: str
    mean: float  # the drop in the forest's R^2 when this parameter is shuffled
    std: float  # its spread over the bootstrap fits
    share: float  # mean as a share of all parameters' positive means

    @property
    def matters(self) -> bool:
        return self.share >= MATTERS_SHARE and self.mean > self.std

    def as_dict(self) -> dict[str, Any]:
        return {
            "param": self.param,
            "importance": self.mean,
            "std": self.std,
            "share": self.share,
            "matters": self.matters,
        }


def encode(values: list[Any], spec: Any) -> np.ndarray:
    """One parameter's values as numbers a forest splits on."""
    kind, args = next(iter(spec.items())) if isinstance(spec, dict) else (None, ())
    if kind == "log_uniform":
        return np.log10(np.asarray(values, dtype=float))
    if kind in ("uniform", "int_uniform"):
        return np.asarray(values, dtype=float)
    choices = [
        repr(value) for value in (args if kind == "choice" else sorted(set(map(repr, values))))
    ]
    return np.asarray(
        [choices.index(repr(value)) if repr(value) in choices else -1 for value in values],
        dtype=float,
    )


def hyperparameter_importance(
    rows: list[tuple[dict[str, Any], float]], specs: dict[str, Any], *, seed: int = 0
) -> list[Importance]:
    """Importance of each parameter in `specs` (name -> its distribution) over `rows` of (params,
    metric), best first.

    Empty when there are fewer than MIN_TRIALS rows or nothing varies."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    names = [name for name in specs if len({repr(params.get(name)) for params, _ in rows}) > 1]
    if len(rows) < MIN_TRIALS or not names:
        return []
    features = np.column_stack(
        [encode([params.get(name) for params, _ in rows], specs[name]) for name in names]
    )
    target = np.asarray([value for _, value in rows], dtype=float)
    if np.ptp(target) == 0:
        return []
    rng = np.random.default_rng(seed)
    scores = np.zeros((BOOTSTRAPS, len(names)))
    for fit in range(BOOTSTRAPS):
        sample = rng.integers(0, len(rows), len(rows))
        forest = RandomForestRegressor(
            n_estimators=TREES, min_samples_leaf=2, random_state=fit, n_jobs=1
        )
        forest.fit(features[sample], target[sample])
        # Scored on every trial: the question is how much the metric leans on each parameter.
        result = permutation_importance(
            forest, features, target, n_repeats=PERMUTATIONS, random_state=fit, n_jobs=1
        )
        scores[fit] = result.importances_mean
    means, stds = scores.mean(axis=0), scores.std(axis=0)
    total = float(sum(max(mean, 0.0) for mean in means)) or 1.0
    found = [
        Importance(name, float(mean), float(std), max(float(mean), 0.0) / total)
        for name, mean, std in zip(names, means, stds, strict=True)
    ]
    return sorted(found, key=lambda item: -item.mean)


def format_importance(
    importances: list[Importance], *, metric: str, epoch: int | None, trials: int
) -> str:
    """The ranking as lines a person reads: `lr  0.62 +- 0.08  (71%)  matters`."""
    if not importances:
        return (
            f"hyperparameter importance: not enough trials with {metric} at one epoch (needs "
            f"{MIN_TRIALS})"
        )
    where = f"at epoch {epoch}, " if epoch is not None else ""
    lines = [
        f"hyperparameter importance for {metric} ({where}{trials} trials; random forest "
        f"permutation importance, +- over {BOOTSTRAPS} bootstrap fits):"
    ]
    width = max(len(item.param) for item in importances)
    for item in importances:
        verdict = "matters" if item.matters else "no clear effect"
        lines.append(
            f"  {item.param.ljust(width)}  {item.mean:6.3f} +- {item.std:.3f}  "
            f"({item.share:4.0%})  {verdict}"
        )
    return "\n".join(lines)
