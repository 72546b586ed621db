"""The shape of the house, checked: rooms of at most a dozen modules, imports that run one
way with no circle, one door per outside system, the command line above the plumbing, small
modules and functions, and the trial side free of the driver's systems."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("commands", "sweeps", "models")
CODE_ROOTS = ("cli.py", *PACKAGES, "bench")
MAX_FOLDER_MODULES = 12
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
RAY_DOOR = "sweeps.driver.cluster.ray_cluster"
TRACKING = "sweeps.driver.tracking"
COMMAND_LINE = ("cli", "commands")


def python_files(*roots: str) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        path = REPO / root
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return found


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import in the file, nested and
    TYPE_CHECKING ones included; relative imports resolved."""
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (
                package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            )
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((module, [alias.name for alias in node.names]))
    return found


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for path in python_files("cli.py", *PACKAGES)}


def import_graph() -> dict[str, set[str]]:
    """Each project module -> the project modules it imports (`from pkg import mod` is pkg.mod)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for module, names in imports_of(path):
            targets |= {f"{module}.{item}" for item in names if f"{module}.{item}" in modules}
            if module in modules and not any(f"{module}.{item}" in modules for item in names):
                targets.add(module)
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        trail.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return trail[trail.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        trail.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle_anywhere():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_the_circle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    "folder",
    sorted({path.parent for path in python_files(*PACKAGES)}),
    ids=lambda folder: relative(folder),
)
def test_no_folder_holds_more_than_a_dozen_modules(folder):
    modules = sorted(path.name for path in folder.glob("*.py"))
    assert len(modules) <= MAX_FOLDER_MODULES, (
        f"{relative(folder)}: {len(modules)} modules: {modules}"
    )


def test_only_the_tracking_package_imports_mlflow():
    importers = {
        name
        for name, path in project_modules().items()
        if any(module.split(".")[0] == "mlflow" for module, _ in imports_of(path))
    }
    assert importers and all(name.startswith(TRACKING + ".") for name in importers), sorted(
        importers
    )


def test_the_tracking_package_imports_nothing_of_the_driver_above_it():
    for name, targets in import_graph().items():
        if name.startswith(TRACKING):
            above = sorted(
                t for t in targets if t.startswith("sweeps.driver") and not t.startswith(TRACKING)
            )
            assert not above, f"{name} imports {above}"


def test_the_command_line_reaches_no_tracking_plumbing():
    for name, path in project_modules().items():
        if name.split(".")[0] in COMMAND_LINE:
            reached = [
                m
                for m, _ in imports_of(path)
                if m.startswith(TRACKING) or m.split(".")[0] == "mlflow"
            ]
            reached += [
                f"{m}.{n}"
                for m, n in imports_of(path)
                for n in n
                if f"{m}.{n}".startswith(TRACKING)
            ]
            assert not reached, f"{name} imports {reached}"


def test_the_entry_point_is_the_top_level_cli_module():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"sweep": "cli:main"}
    assert (REPO / "cli.py").is_file() and not (REPO / "cli").exists()


def is_ray_internal(module: str, names: list[str]) -> bool:
    """ray._private and friends, Tune's execution internals, or a _private name from Ray."""
    parts = module.split(".")
    return parts[0] == "ray" and (
        any(part.startswith("_") for part in parts)
        or module.startswith("ray.tune.execution")
        or any(name.startswith("_") for name in names)
    )


def test_only_the_ray_door_reaches_into_rays_internals():
    reaching = {
        module_name(path)
        for path in python_files("cli.py", *PACKAGES, "bench")
        if any(is_ray_internal(module, names) for module, names in imports_of(path))
    }
    assert reaching == {RAY_DOOR}


def test_the_trial_side_and_the_model_zoo_never_import_the_driver_or_mlflow():
    for path in python_files("sweeps/trial", "models"):
        for module, _ in imports_of(path):
            assert not module.startswith(("sweeps.driver", "mlflow", "cli", "commands")), (
                f"{relative(path)} imports {module}"
            )


@pytest.mark.parametrize("path", python_files(*CODE_ROOTS), ids=relative)
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{relative(path)} has {lines} lines: split it along a seam"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, (
                f"{relative(path)}:{node.lineno} {node.name} is {length} lines"
            )


def test_every_module_says_what_it_is_for():
    for path in python_files("cli.py", *PACKAGES):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{relative(path)} has no docstring"
