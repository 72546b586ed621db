"""The sweep file's field types that pydantic lacks: registry names, a parameter's spec (a
literal or one distribution), a keyword-or-number; and how a field and a hint read in an error."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from sweeps.driver.sweep_file.distributions import DISTRIBUTIONS, SCALAR_SCHEMA, DistributionError

GRID_KEYS = ("grid", "grid_search")

RANDOM_SEARCH_WHY = (
    "grid search is not supported: sweep samples every parameter at random on purpose, "
    "because a grid spends most trials re-testing unimportant dimensions while random "
    "search tries a new value of every parameter in every trial (Bergstra & Bengio 2012); "
    "use {choice: [...]} for a set of values"
)


def registry_names(registry: dict[str, Any]) -> Any:
    """A Literal of a registry's names, so the schema and its errors list them."""
    return Literal[tuple(sorted(registry))]


def _parse_param_spec(value: Any) -> Any:
    """A literal value or exactly one distribution, in the sweep file's own shape."""
    if not isinstance(value, dict):
        if isinstance(value, list):
            raise _spec_error(f"a list is not a value; to sample from it write {{choice: {value}}}")
        return value
    if len(value) != 1:
        raise _spec_error(
            f"give a literal value or exactly one distribution, got keys {sorted(map(str, value))}"
        )
    ((kind, args),) = value.items()
    if kind in GRID_KEYS:
        raise PydanticCustomError("grid_search", RANDOM_SEARCH_WHY)
    if kind not in DISTRIBUTIONS:
        hint = did_you_mean(str(kind), DISTRIBUTIONS)
        raise _spec_error(
            f"unknown distribution {kind!r}{hint}; choose from {list(DISTRIBUTIONS)} (all are "
            "sampled at random)"
        )
    try:
        DISTRIBUTIONS[kind].check(args)
    except DistributionError as error:
        raise _spec_error(str(error)) from None
    return value


def _spec_error(message: str) -> PydanticCustomError:
    # Formatted by the caller: pydantic's message templates know neither {x!r} nor {{ escapes.
    return PydanticCustomError("param_spec", message)


_PARAM_SPEC_SCHEMA = {
    "anyOf": [
        SCALAR_SCHEMA,
        *(
            {
                "type": "object",
                "properties": {name: kind.json_schema()},
                "required": [name],
                "additionalProperties": False,
            }
            for name, kind in DISTRIBUTIONS.items()
        ),
    ]
}
ParamSpec = Annotated[Any, BeforeValidator(_parse_param_spec), WithJsonSchema(_PARAM_SPEC_SCHEMA)]


def keyword_or_number(keywords: tuple[str, ...], *, minimum: float, whole: bool) -> Any:
    """A field that takes one of `keywords` or a number >= `minimum`, refused in one line (a plain
    Union would report one line per alternative)."""
    kind = "whole number" if whole else "number"

    def parse(value: Any) -> Any:
        if isinstance(value, str) and value in keywords:
            return value
        if value is False and "off" in keywords:
            return "off"  # YAML 1.1, which PyYAML reads, makes a bare `off` false
        number = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (isinstance(value, int) or not whole)
        )
        if not number or not value >= minimum:  # `not >=` refuses NaN too
            wanted = ", ".join(repr(keyword) for keyword in keywords)
            raise PydanticCustomError(
                "keyword_or_number",
                "must be {wanted} or a {kind} >= {minimum}, got {value}",
                {
                    "wanted": wanted,
                    "kind": kind,
                    "minimum": minimum,
                    "value": repr(value),
                },
            )
        return value if whole else float(value)

    schema = {
        "anyOf": [
            {"enum": list(keywords)},
            {"type": "integer" if whole else "number", "minimum": minimum},
        ]
    }
    # int too when not whole: a default of 0 stays 0 in the resolved file, as before `auto` existed.
    return Annotated[
        str | int if whole else str | int | float,
        BeforeValidator(parse),
        WithJsonSchema(schema),
    ]


def field_path(loc: tuple[Any, ...]) -> str:
    """A dotted field path on one line: a key with a newline or tab in it is shown quoted."""
    return ".".join(str(part) if str(part).isprintable() else repr(str(part)) for part in loc)


def did_you_mean(word: str, valid: Any) -> str:
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
