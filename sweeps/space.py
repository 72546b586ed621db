"""The search space: sweep-file distributions as Ray Tune domains, sampled at random, seeded.

Ray is imported only to run a sweep: `sweep validate` previews the trials with numpy
alone, since importing Ray's sampling code takes seconds.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ray.tune.search import BasicVariantGenerator


def build_search_space(params: dict[str, Any]) -> dict[str, Any]:
    """Ray Tune's param space: a domain for each distribution, literals as they are."""
    return {name: _domain(spec) for name, spec in params.items()}


def _domain(spec: Any) -> Any:
    from ray import tune

    if not isinstance(spec, dict):
        return spec
    (kind, args), = spec.items()
    if kind == "log_uniform":
        return tune.loguniform(*args)
    if kind == "uniform":
        return tune.uniform(*args)
    if kind == "int_uniform":
        low, high = args
        return tune.randint(low, high + 1)  # the sweep file's bounds are inclusive
    if kind == "choice":
        return tune.choice(args)
    raise ValueError(f"unknown distribution {kind!r}")


def build_search_algorithm(*, seed: int, max_concurrent: int) -> BasicVariantGenerator:
    """Tune's random variant generator, seeded so the same file samples the same trials."""
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)


def preview_trial_configs(params: dict[str, Any], *, seed: int, num_samples: int) -> list[dict[str, Any]]:
    """The configs a sweep with this seed will run, in order, without importing Ray.

    Replays BasicVariantGenerator's draws: one numpy generator seeded with `seed` for
    the whole sweep, one draw per distribution per trial in the sweep file's order,
    each with the numpy call Ray's sampler for that domain makes. So the preview
    matches what `sweep run` trains (tests/test_cli_startup.py holds it to Ray's own).
    """
    rng = np.random.default_rng(seed)
    return [{name: _draw(spec, rng) for name, spec in params.items()} for _ in range(num_samples)]


def _draw(spec: Any, rng: np.random.Generator) -> Any:
    """One value of `spec`, drawn as Ray's sampler for `_domain(spec)` draws it."""
    if not isinstance(spec, dict):
        return spec
    (kind, args), = spec.items()
    if kind == "log_uniform":
        return float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]), size=1))[0])
    if kind == "uniform":
        return float(rng.uniform(*args, size=1)[0])
    if kind == "int_uniform":
        low, high = args
        return int(rng.integers(low, high + 1, size=1)[0])
    if kind == "choice":
        return args[rng.choice(np.arange(len(args)), size=1)[0]]
    raise ValueError(f"unknown distribution {kind!r}")


def representative_params(params: dict[str, Any]) -> dict[str, Any]:
    """One deterministic point of the space: fixed values as they are, the middle of
    each range (the geometric middle for log_uniform), and the first of each choice."""
    point = {}
    for name, spec in params.items():
        if not isinstance(spec, dict):
            point[name] = spec
            continue
        (kind, args), = spec.items()
        if kind == "log_uniform":
            point[name] = math.sqrt(args[0] * args[1])
        elif kind == "uniform":
            point[name] = (args[0] + args[1]) / 2
        elif kind == "int_uniform":
            point[name] = (args[0] + args[1]) // 2
        else:
            point[name] = args[0]
    return point
