"""Reading a sweep file: YAML as people write it, `--set` overrides, and the resolved file written back."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from sweeps.driver.config import ConfigError, SweepConfig, validate_sweep


def load_sweep(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> SweepConfig:
    """Read, override and validate a sweep file; raises ConfigError listing every problem."""
    source = str(path)
    raw = _read_yaml(Path(path))
    for dotted, value in overrides:
        _set_dotted(raw, dotted, value, source)
    return validate_sweep(raw, source=source)


class _SweepLoader(yaml.SafeLoader):
    """YAML as people write it: `1e3` and `1.0e-4` are numbers (PyYAML's YAML 1.1 reads them as strings)."""


_SweepLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    # A digit before the exponent: `.e5` or `-e5` would reach float() and raise ValueError.
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_SweepLoader)


def parse_override(text: str) -> tuple[str, Any]:
    """`dotted.key=value` with the value parsed as YAML, as `--set` takes it."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", [(text, "expected dotted.key=value, e.g. train.epochs=2")])
    try:
        return key.strip(), load_yaml(value)
    except yaml.YAMLError as error:
        raise ConfigError("--set", [(key.strip(), f"value is not valid YAML: {_first_line(error)}")]) from None


def dump_sweep(config: SweepConfig) -> str:
    """The resolved sweep as YAML, in the sweep file's own shape and field order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, default_flow_style=None)


def _read_yaml(path: Path) -> Any:
    source = str(path)
    if path.is_dir():
        raise ConfigError(source, [("", "is a directory, expected a sweep file (YAML)")])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [("", "no such file")]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, [("", "is not a text file (not UTF-8), expected a sweep file (YAML)")]) from None
    except OSError as error:
        raise ConfigError(source, [("", f"cannot read: {error.strerror}")]) from None
    try:
        raw = load_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(source, [("", f"invalid YAML: {_first_line(error)}")]) from None
    except RecursionError:  # pyyaml composes nested collections recursively
        raise ConfigError(source, [("", "invalid YAML: collections nested too deeply")]) from None
    if raw is None:
        raise ConfigError(source, [("", "is empty; a sweep file needs at least `name` and `params`")])
    return raw


def _first_line(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def _set_dotted(raw: Any, dotted: str, value: Any, source: str) -> None:
    if not isinstance(raw, dict):
        return  # validate_sweep reports the malformed top level
    keys = dotted.split(".")
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(source, [(".".join(keys[: depth + 1]), f"is not a section, cannot set {dotted}")])
        node = child
    node[keys[-1]] = value
