"""The sweep file's distribution kinds, one registry entry each.

An entry says everything about its kind: how it is written and checked, its JSON
schema, its Ray Tune domain, the seeded numpy draw `sweep validate` previews (the
same call Ray's sampler makes, so the preview is what `sweep run` trains), the value
`sweep check` stands in for it, and how `sweep refine` narrows it. Adding a kind is
one entry here and its test.

Ray is imported only to build a sweep's domains: `sweep validate` previews the trials
with numpy alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ray.tune.search.sample import Domain


class DistributionError(ValueError):
    """A distribution written wrongly; the message echoes what was written."""


@dataclass(frozen=True)
class Evidence:
    """What a coarse sweep says about one parameter, from its trials compared at one rung."""

    ranked: list[Any]  # the parameter's value in each trial that reached the rung, best trial first
    top: int  # how many of the best trials a narrowed range must hold
    matters: bool  # the hyperparameter importance says this parameter explains the metric
    rung: int | None = None  # the epoch the trials were compared at, for the reasons given


@dataclass(frozen=True)
class Narrowed:
    """A refined distribution's arguments, why they are what they are, and what a person should
    know."""

    args: list[Any]
    warnings: tuple[str, ...] = ()
    why: str = ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


SCALAR_SCHEMA = {"type": ["number", "integer", "string", "boolean"]}


class Distribution:
    """One kind of distribution, written `{name: args}` in a sweep file."""

    name: str

    def check(self, args: Any) -> None:
        """Raise DistributionError if `args` are not this kind's arguments."""
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def tune_domain(self, args: Any) -> Domain:
        raise NotImplementedError

    def draw(self, args: Any, rng: np.random.Generator) -> Any:
        """One value, drawn with the numpy call Ray's sampler makes for `tune_domain(args)`."""
        raise NotImplementedError

    def representative(self, args: Any) -> Any:
        """One deterministic value that stands for the whole distribution."""
        raise NotImplementedError

    def refusal_for(self, param_kind: str, param_name: str) -> str | None:
        """Why a trial parameter of `param_kind` cannot be sampled this way, or None."""
        return None

    def values(self, args: Any) -> list[tuple[str, Any]]:
        """The values to check against the parameter's own rules, each with where it is written."""
        raise NotImplementedError

    def narrow(
        self, args: Any, evidence: Evidence, *, name: str, valid: Callable[[Any], bool]
    ) -> Narrowed:
        """`sweep refine`: the arguments the evidence supports (kept as they are without it)."""
        raise NotImplementedError


class Choice(Distribution):
    name = "choice"

    def check(self, args: Any) -> None:
        if not isinstance(args, list) or not args:
            raise DistributionError(f"choice needs a non-empty list of values, got {args!r}")

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "items": SCALAR_SCHEMA}

    def tune_domain(self, args: list[Any]) -> Domain:
        from ray import tune

        return tune.choice(args)

    def draw(self, args: list[Any], rng: np.random.Generator) -> Any:
        return args[rng.choice(np.arange(len(args)), size=1)[0]]

    def representative(self, args: list[Any]) -> Any:
        return args[0]

    def values(self, args: list[Any]) -> list[tuple[str, Any]]:
        return [(f"choice[{index}]", value) for index, value in enumerate(args)]

    def narrow(
        self, args: list[Any], evidence: Evidence, *, name: str, valid: Callable[[Any], bool]
    ) -> Narrowed:
        """A value is dropped only when enough trials tried it and every one of them ranked in the
        bottom part; one trial's bad luck (at a poor learning rate, say) drops nothing."""
        bottom = len(evidence.ranked) * (1 - DROP_BELOW)
        dropped = []
        for value in args:
            places = [place for place, tried in enumerate(evidence.ranked) if _same(tried, value)]
            if len(places) >= DROP_AFTER_TRIALS and all(place >= bottom for place in places):
                dropped.append(value)
        kept = [value for value in args if value not in dropped] or list(args)
        if len(kept) == len(args):
            return Narrowed(
                list(args),
                why="kept every value: none was tried by enough trials that all ranked low",
            )
        at = f" at epoch {evidence.rung}" if evidence.rung is not None else ""
        shown = ", ".join(_yaml_text(value) for value in args if value not in kept)
        return Narrowed(
            kept,
            why=f"dropped {shown}: {DROP_AFTER_TRIALS}+ trials each, all in the bottom "
            f"{DROP_BELOW:.0%}{at}",
        )


# A choice's value is dropped when at least DROP_AFTER_TRIALS trials tried it (at the
# comparison rung) and all of them ranked in the bottom DROP_BELOW of those trials.
DROP_AFTER_TRIALS = 3
DROP_BELOW = 0.5


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # True is not 1


def _yaml_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# How `sweep refine` narrows a range, as fractions of the old range's span.
MARGIN = 0.1  # kept on each side of the top trials' values
EDGE = 0.1  # a best value this close to a bound is "at the edge"
WIDEN = 0.5  # how far past an edge the range grows


class Range(Distribution):
    """`[low, high]` numbers, sampled on a linear or a log axis."""

    to_axis: Callable[[float], float] = staticmethod(float)
    from_axis: Callable[[float], float] = staticmethod(float)

    def check(self, args: Any) -> None:
        if not (
            isinstance(args, list) and len(args) == 2 and all(_is_number(bound) for bound in args)
        ):
            raise DistributionError(f"{self.name} needs [low, high] numbers, got {args!r}")
        # An int is always finite; math.isfinite would overflow on one beyond float range.
        if not all(isinstance(bound, int) or math.isfinite(bound) for bound in args):
            raise DistributionError(f"{self.name} bounds must be finite, got {args!r}")
        self.check_bounds(*args)
        try:
            span = float(args[1]) - float(args[0])
        except OverflowError:  # an int past a float's range
            span = math.inf
        if not math.isfinite(span):
            raise DistributionError(
                f"{self.name} range [{args[0]}, {args[1]}] is wider than a float can hold"
            )
        if not args[0] < args[1]:
            raise DistributionError(f"{self.name} needs low < high, got [{args[0]}, {args[1]}]")

    def check_bounds(self, low: float, high: float) -> None:
        """Rules of this kind beyond `low < high`, both finite."""

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}

    def refusal_for(self, param_kind: str, param_name: str) -> str | None:
        if param_kind not in ("float", "int"):
            return f"{param_name} takes {param_kind} values; sample it with {{choice: [...]}}"
        if param_kind == "int":
            return f"{param_name} is an integer; sample it with int_uniform or choice"
        return None

    def values(self, args: list[float]) -> list[tuple[str, Any]]:
        return [(self.name, bound) for bound in args]

    def representative(self, args: list[float]) -> float:
        return self.from_axis((self.to_axis(args[0]) + self.to_axis(args[1])) / 2)

    def narrow(
        self, args: list[float], evidence: Evidence, *, name: str, valid: Callable[[Any], bool]
    ) -> Narrowed:
        """Around the top trials' values where the parameter matters; as it was where it does not
        (narrowing a range that explains nothing only throws away what it might yet do)."""
        values = evidence.ranked[: evidence.top]
        if not evidence.matters or not values:
            return Narrowed(
                list(args), why="kept: no clear effect on the metric in the coarse sweep"
            )
        narrowed = self._around(args, values, best=values[0], name=name, valid=valid)
        at = f" at epoch {evidence.rung}" if evidence.rung is not None else ""
        return Narrowed(
            narrowed.args, narrowed.warnings, why=f"narrowed around the top {len(values)}{at}"
        )

    def _around(
        self,
        args: list[float],
        values: list[float],
        *,
        best: float,
        name: str,
        valid: Callable[[Any], bool],
    ) -> Narrowed:
        low, high = self.to_axis(args[0]), self.to_axis(args[1])
        span = high - low
        points = [self.to_axis(value) for value in values]
        new_low, new_high = (
            max(low, min(points) - MARGIN * span),
            min(high, max(points) + MARGIN * span),
        )
        where = f"{name} = {best:.3g} (the best trial's)"
        warnings = []
        if self.to_axis(best) - low <= EDGE * span:
            new_low = low - WIDEN * span
            warnings.append(
                f"{where} is at the low edge of [{args[0]:g}, {args[1]:g}]: widening below it "
                "instead of narrowing"
            )
        if high - self.to_axis(best) <= EDGE * span:
            new_high = high + WIDEN * span
            warnings.append(
                f"{where} is at the high edge of [{args[0]:g}, {args[1]:g}]: widening above it "
                "instead of narrowing"
            )
        if new_high - new_low < 1e-9 * max(1.0, abs(span)):
            new_low, new_high = new_low - MARGIN * span, new_high + MARGIN * span
        bounds = self.rounded([self.from_axis(new_low), self.from_axis(new_high)])
        # Past a bound the trainer refuses (lr <= 0, momentum >= 1), keep the old one.
        return Narrowed(
            [
                bound if valid(bound) else original
                for bound, original in zip(bounds, args, strict=True)
            ],
            tuple(warnings),
        )

    def rounded(self, bounds: list[float]) -> list[Any]:
        return [float(f"{bound:.4g}") for bound in bounds]


class Uniform(Range):
    name = "uniform"

    def tune_domain(self, args: list[float]) -> Domain:
        from ray import tune

        return tune.uniform(*args)

    def draw(self, args: list[float], rng: np.random.Generator) -> float:
        return float(rng.uniform(args[0], args[1], size=1)[0])


class LogUniform(Range):
    name = "log_uniform"
    to_axis = staticmethod(math.log10)
    from_axis = staticmethod(lambda value: 10**value)

    def check_bounds(self, low: float, high: float) -> None:
        if low <= 0:
            raise DistributionError(f"log_uniform lower bound must be > 0, got {low}")

    def representative(self, args: list[float]) -> float:
        return math.sqrt(args[0] * args[1])  # the geometric middle

    def tune_domain(self, args: list[float]) -> Domain:
        from ray import tune

        return tune.loguniform(*args)

    def draw(self, args: list[float], rng: np.random.Generator) -> float:
        return float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]), size=1))[0])


class IntUniform(Range):
    name = "int_uniform"

    def check_bounds(self, low: float, high: float) -> None:
        if not (isinstance(low, int) and isinstance(high, int)):
            raise DistributionError(f"int_uniform bounds must be integers, got {[low, high]!r}")
        if not (-(1 << 63) <= low and high < (1 << 63) - 1):  # the sampler draws below high + 1
            raise DistributionError(
                f"int_uniform bounds must lie within 64-bit integers, got [{low}, {high}]"
            )

    def refusal_for(self, param_kind: str, param_name: str) -> str | None:
        if param_kind not in ("float", "int"):
            return f"{param_name} takes {param_kind} values; sample it with {{choice: [...]}}"
        return None

    def tune_domain(self, args: list[int]) -> Domain:
        from ray import tune

        return tune.randint(args[0], args[1] + 1)  # the sweep file's bounds are inclusive

    def draw(self, args: list[int], rng: np.random.Generator) -> int:
        return int(rng.integers(args[0], args[1] + 1, size=1)[0])

    def representative(self, args: list[float]) -> int:
        return int((args[0] + args[1]) // 2)

    def rounded(self, bounds: list[float]) -> list[Any]:
        low = math.floor(bounds[0])
        return [low, max(math.ceil(bounds[1]), low + 1)]


DISTRIBUTIONS: dict[str, Distribution] = {
    kind.name: kind for kind in (LogUniform(), Uniform(), IntUniform(), Choice())
}


def get_distribution(name: str) -> Distribution:
    try:
        return DISTRIBUTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown distribution {name!r}; choose from {list(DISTRIBUTIONS)}"
        ) from None


def split_spec(spec: Any) -> tuple[Distribution, Any] | None:
    """(distribution, its arguments) for a sampled parameter; None for a literal."""
    if not isinstance(spec, dict):
        return None
    ((kind, args),) = spec.items()
    return get_distribution(kind), args


def sampled_names(params: dict[str, Any]) -> list[str]:
    return [name for name, spec in params.items() if split_spec(spec) is not None]


def build_search_space(params: dict[str, Any]) -> dict[str, Any]:
    """Ray Tune's param space: a domain for each distribution, literals as they are."""
    space = {}
    for name, spec in params.items():
        sampled = split_spec(spec)
        space[name] = spec if sampled is None else sampled[0].tune_domain(sampled[1])
    return space


def preview_trial_configs(
    params: dict[str, Any], *, seed: int, num_samples: int
) -> list[dict[str, Any]]:
    """The configs a sweep with this seed will run, in order, without importing Ray.

    Replays BasicVariantGenerator's draws: one numpy generator seeded with `seed` for
    the whole sweep, one draw per distribution per trial in the sweep file's order,
    each with the numpy call Ray's sampler for that domain makes. So the preview
    matches what `sweep run` trains (a test holds it to Ray's own draws).
    """
    rng = np.random.default_rng(seed)
    return [{name: _draw(spec, rng) for name, spec in params.items()} for _ in range(num_samples)]


def _draw(spec: Any, rng: np.random.Generator) -> Any:
    sampled = split_spec(spec)
    return spec if sampled is None else sampled[0].draw(sampled[1], rng)


def representative_params(params: dict[str, Any]) -> dict[str, Any]:
    """One deterministic point of the space: fixed values as they are, the middle of
    each range (the geometric middle for log_uniform), and the first of each choice."""
    point = {}
    for name, spec in params.items():
        sampled = split_spec(spec)
        point[name] = spec if sampled is None else sampled[0].representative(sampled[1])
    return point
