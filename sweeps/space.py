"""The search space: sweep-file distributions as Ray Tune domains, sampled at random, seeded."""
from __future__ import annotations

import math
from typing import Any

from ray import tune
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.variant_generator import generate_variants


def build_search_space(params: dict[str, Any]) -> dict[str, Any]:
    """Ray Tune's param space: a domain for each distribution, literals as they are."""
    return {name: _domain(spec) for name, spec in params.items()}


def _domain(spec: Any) -> Any:
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
    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)


def preview_trial_configs(params: dict[str, Any], *, seed: int, num_samples: int) -> list[dict[str, Any]]:
    """The configs a sweep with this seed will run, in order, without starting Ray.

    Draws from one seeded generator per sample, exactly as BasicVariantGenerator's
    trial iterator does, so the preview matches what `sweep run` trains.
    """
    from ray.tune.search.sample import _BackwardsCompatibleNumpyRng

    random_state = _BackwardsCompatibleNumpyRng(seed)
    spec = {"config": build_search_space(params)}
    configs = []
    for _ in range(num_samples):
        _, resolved = next(generate_variants(spec, random_state=random_state))
        configs.append(resolved["config"])
    return configs


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
