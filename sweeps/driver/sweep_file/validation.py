"""Validating a sweep file: the schema, then what it cannot say field by field; every
problem one line that names the file and the field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sweeps.driver.sweep_file.checks import check_cross_fields, check_params
from sweeps.driver.sweep_file.fields import did_you_mean, field_path
from sweeps.driver.sweep_file.schema import MODEL_CONFIGS, SweepConfig, architecture_of
from sweeps.errors import SweepError


class ConfigError(SweepError):
    """A sweep file that cannot run; one problem per line, each naming the file and field."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [
            f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}"
            for path, message in self.problems
        ]


def validate_sweep(raw: Any, *, source: str) -> SweepConfig:
    if not isinstance(raw, dict):
        raise ConfigError(
            source,
            [("", f"expected a mapping of sections at the top level, got {type(raw).__name__}")],
        )
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as error:
        problems = [_describe(item, raw) for item in error.errors()]
        # Also report what the trainer would refuse in the params that did parse.
        if isinstance(raw.get("params"), dict):
            unparsed = {
                tuple(item["loc"][1:2]) for item in error.errors() if item["loc"][0] == "params"
            }
            # A key that is not a string was reported above (pydantic names null as 'None').
            parsed = {
                name: spec
                for name, spec in raw["params"].items()
                if isinstance(name, str) and (name,) not in unparsed
            }
            if () not in unparsed:
                problems += check_params(parsed)
        raise ConfigError(source, problems) from None
    problems = check_params(config.params) + check_cross_fields(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def _describe(error: ErrorDetails, raw: dict[str, Any]) -> tuple[str, str]:
    """A pydantic error as (dotted field path, message that echoes the bad value)."""
    loc = tuple(error["loc"])
    if loc[:1] == ("model",) and len(loc) > 1 and loc[1] in MODEL_CONFIGS:
        loc = loc[:1] + loc[2:]  # pydantic names the architecture's schema; the file does not
    kind = error["type"]
    if loc[-1:] == ("[key]",):  # pydantic's marker for a bad key, e.g. `params: {null: 0.1}`
        return field_path(loc[:-1]), f"key must be a string, got {error['input']!r}"
    path = field_path(loc)
    if kind in ("union_tag_invalid", "union_tag_not_found"):  # not_found: `arch: null`
        return (
            f"{path}.arch",
            f"unknown architecture {architecture_of(error['input'])!r}; choose from "
            f"{sorted(MODEL_CONFIGS)}",
        )
    if kind == "extra_forbidden":
        valid = _field_names_at(loc[:-1], raw)
        return (
            path,
            f"unknown key {loc[-1]!r}{did_you_mean(str(loc[-1]), valid)}; valid keys: {valid}",
        )
    if kind == "missing":
        return path, "required field is missing"
    if kind in (
        "param_spec",
        "grid_search",
        "credentials_in_uri",
        "storage_path",
        "keyword_or_number",
    ):
        return path, error["msg"]
    message = error["msg"][0].lower() + error["msg"][1:]
    if loc == ("mlflow", "tracking_uri"):  # a URI urlsplit refuses may still hold a password
        return (
            path,
            f"{message}, got a {type(error['input']).__name__} (not shown: it may hold "
            "credentials)",
        )
    return path, f"{message}, got {error['input']!r}"


def _field_names_at(loc: tuple[Any, ...], raw: Any) -> list[str]:
    """The keys the section at `loc` allows (the model section's depend on its arch)."""
    model: Any = SweepConfig
    for part in loc:
        field = (
            model.model_fields.get(part)
            if isinstance(model, type) and issubclass(model, BaseModel)
            else None
        )
        if field is None:
            return []
        model = (
            MODEL_CONFIGS.get(architecture_of(raw.get("model")))
            if part == "model"
            else field.annotation
        )
    return (
        list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    )
