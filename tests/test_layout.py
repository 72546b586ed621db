"""The shape of the house, checked: one door per outside system, small modules and functions,
and the trial side free of the driver's systems."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

CODE_ROOTS = ("cli", "sweeps", "models", "bench")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
RAY_DOOR = "sweeps/driver/ray_cluster.py"
TRACKING_PACKAGE = "sweeps/driver/tracking/"


def python_files(*roots: str) -> list[Path]:
    return sorted(path for root in roots for path in (REPO / root).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def imported_modules(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import in the file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def test_only_the_tracking_package_imports_mlflow():
    importers = {
        relative(path)
        for path in python_files("cli", "sweeps", "models")
        if any(module.split(".")[0] == "mlflow" for module, _ in imported_modules(path))
    }
    assert importers and all(name.startswith(TRACKING_PACKAGE) for name in importers), sorted(importers)


def is_ray_internal(module: str, names: list[str]) -> bool:
    """ray._private and friends, Tune's execution internals, or a _private name from Ray."""
    parts = module.split(".")
    return parts[0] == "ray" and (
        any(part.startswith("_") for part in parts) or module.startswith("ray.tune.execution") or any(name.startswith("_") for name in names)
    )


def test_only_the_ray_door_reaches_into_rays_internals():
    reaching = {
        relative(path)
        for path in python_files("cli", "sweeps", "models", "bench")
        if any(is_ray_internal(module, names) for module, names in imported_modules(path))
    }
    assert reaching == {RAY_DOOR}


def test_the_trial_side_and_the_model_zoo_never_import_the_driver_or_mlflow():
    for path in python_files("sweeps/trial", "models"):
        for module, _ in imported_modules(path):
            assert not module.startswith(("sweeps.driver", "mlflow", "cli")), f"{relative(path)} imports {module}"


@pytest.mark.parametrize("path", python_files(*CODE_ROOTS), ids=relative)
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{relative(path)} has {text.count(chr(10))} lines: split it along a seam"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{relative(path)}:{node.lineno} {node.name} is {length} lines"


def test_every_module_says_what_it_is_for():
    for path in python_files("cli", "sweeps", "models"):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{relative(path)} has no docstring"
