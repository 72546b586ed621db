"""Reading a sweep file: YAML as people write it, `--set` overrides, and the resolved file written
back.

A sweep file is input from anywhere (a CI variable, a colleague, a generated file), so
it is read defensively: only a regular file, at most MAX_FILE_BYTES, no duplicate keys,
aliases that expand to at most MAX_VALUES values, and every number finite and within
64 bits, before the schema sees it.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from sweeps.driver.sweep_file.schema import SweepConfig
from sweeps.driver.sweep_file.validation import ConfigError, validate_sweep

MAX_FILE_BYTES = 1 << 20  # a sweep file is a few hundred bytes; a MiB is generous
MAX_VALUES = 10_000  # values after alias expansion: a YAML "billion laughs" is refused here
INT64 = (-(1 << 63), (1 << 63) - 1)


def load_sweep(path: str | Path, overrides: Sequence[tuple[str, Any]] = ()) -> SweepConfig:
    """Read, override and validate a sweep file; raises ConfigError listing every problem."""
    source = str(path)
    raw = load_yaml(_read_text(Path(path)), source=source)
    if raw is None:
        raise ConfigError(
            source, [("", "is empty; a sweep file needs at least `name` and `params`")]
        )
    for dotted, value in overrides:
        _set_dotted(raw, dotted, value, source)
    return validate_sweep(raw, source=source)


class _SweepLoader(yaml.SafeLoader):
    """YAML as people write it: `1e3` and `1.0e-4` are numbers (PyYAML's YAML 1.1 reads them as
    strings)."""


_SweepLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    # A digit before the exponent: `.e5` or `-e5` would reach float() and raise ValueError.
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str, *, source: str, where: str = "") -> Any:
    """Parse YAML text as a sweep file's; ConfigError names `source` (and `where` in it) when it
    cannot be."""
    loader = None
    try:
        loader = _SweepLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        problems = _check_nodes(node, where)
        if problems:
            raise ConfigError(source, problems)
        value = loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ConfigError(source, [(where, f"invalid YAML: {_yaml_problem(error)}")]) from None
    except RecursionError:  # pyyaml composes nested collections recursively
        raise ConfigError(
            source, [(where, "invalid YAML: collections nested too deeply")]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    problems = list(_check_numbers(value, where))
    if problems:
        raise ConfigError(source, problems)
    return value


def _check_nodes(root: Node, where: str) -> list[tuple[str, str]]:
    """Duplicate keys (with both lines) and alias expansion past MAX_VALUES, on the parsed
    nodes: before any Python value is built, and once per node however often it is aliased."""
    problems: list[tuple[str, str]] = []
    sizes: dict[int, int] = {}
    inside: set[int] = set()

    def size(node: Node, path: str) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in inside:
            raise ConfigError(
                "", [(path, "a YAML alias refers to the collection that contains it")]
            )
        inside.add(id(node))
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(item, f"{path}[{index}]") for index, item in enumerate(node.value))
        elif isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, ScalarNode) else None
                child = _join_path(path, name) if isinstance(name, str) else path
                if name is not None and key.tag != "tag:yaml.org,2002:merge":
                    if name in seen:
                        problems.append(
                            (
                                child,
                                f"duplicate key {name!r} (lines {seen[name]} and "
                                f"{key.start_mark.line + 1}): "
                                "the second would silently replace the first",
                            )
                        )
                    seen.setdefault(name, key.start_mark.line + 1)
                total += size(key, child) + size(value, child)
        inside.discard(id(node))
        sizes[id(node)] = total
        return total

    try:
        total = size(root, where)
    except ConfigError as error:
        return error.problems
    if total > MAX_VALUES:
        problems.append(
            (
                where,
                f"holds {total} values once its YAML aliases are expanded, more than the "
                f"{MAX_VALUES} a sweep file may",
            )
        )
    return problems


def _check_numbers(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every number finite and within 64 bits: a sweep's numbers reach numpy, Ray and MLflow."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
        yield (
            path,
            f"{value if len(str(value)) < 30 else str(value)[:12] + '...'} does not fit in 64 bits",
        )
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, f"must be a finite number, got {value}"
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _check_numbers(child, _join_path(path, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _check_numbers(child, f"{path}[{index}]")


def _join_path(path: str, key: str) -> str:
    shown = key if key.isprintable() else repr(key)
    return f"{path}.{shown}" if path else shown


def parse_override(text: str) -> tuple[str, Any]:
    """`dotted.key=value` with the value parsed as YAML, as `--set` takes it."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", [(text, "expected dotted.key=value, e.g. train.epochs=2")])
    return key.strip(), load_yaml(value, source="--set", where=key.strip())


def dump_sweep(config: SweepConfig) -> str:
    """The resolved sweep as YAML, in the sweep file's own shape and field order."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, default_flow_style=None)


def _read_text(path: Path) -> str:
    """The file's text: a regular file of at most MAX_FILE_BYTES (a FIFO or /dev/zero would
    hang or fill the memory), UTF-8."""
    source = str(path)
    try:
        # a FIFO with no writer must not block the open
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(source, [("", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError(source, [("", "is a directory, expected a sweep file (YAML)")]) from None
    except OSError as error:
        raise ConfigError(source, [("", f"cannot read: {error.strerror}")]) from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        if stat.S_ISDIR(mode):
            raise ConfigError(source, [("", "is a directory, expected a sweep file (YAML)")])
        raise ConfigError(
            source,
            [
                (
                    "",
                    "is not a regular file (a device, pipe or socket), expected a sweep file "
                    "(YAML)",
                )
            ],
        )
    with os.fdopen(descriptor, "rb") as file:
        content = file.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise ConfigError(
            source,
            [
                (
                    "",
                    f"is larger than {MAX_FILE_BYTES // 1024} KiB; a sweep file is a few "
                    "hundred bytes",
                )
            ],
        )
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            source, [("", "is not a text file (not UTF-8), expected a sweep file (YAML)")]
        ) from None


def _yaml_problem(error: yaml.YAMLError) -> str:
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
            raise ConfigError(
                source, [(".".join(keys[: depth + 1]), f"is not a section, cannot set {dotted}")]
            )
        node = child
    node[keys[-1]] = value
