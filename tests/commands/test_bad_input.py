"""Bad input: every broken sweep file exits 2 with one line per problem, naming the file and field,
and writes nothing.

The corpus is `tests/bad_inputs/`: each file's first line is `# expect: <dotted.path>[,
<dotted.path> ...]`
(`-` for a problem with the whole file), and an optional `# not echoed: <text>` line names a secret
the
error must not repeat. Property tests then mutate the valid `search.yaml` at random.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import cli
from sweeps.driver.sweep_file.distributions import DISTRIBUTIONS
from sweeps.driver.sweep_file.fields import GRID_KEYS
from sweeps.driver.sweep_file.reading import load_sweep
from sweeps.driver.sweep_file.validation import ConfigError, validate_sweep
from sweeps.trial_params import TRIAL_PARAMS
from tests.conftest import REPO, run_sweep_cli

CORPUS = sorted((REPO / "tests" / "bad_inputs").iterdir())
SEARCH_YAML = (REPO / "search.yaml").read_text()


def expectations(path: Path) -> tuple[list[str], str | None]:
    """The dotted paths the file's errors must name ([] for the whole file) and a secret they must
    not echo."""
    header = path.read_bytes().split(b"\n", 3)[:3]
    first, *rest = (line.decode(errors="replace") for line in header)
    assert first.startswith("# expect: "), f"{path.name} must start with `# expect: <dotted.path>`"
    expected = first.removeprefix("# expect: ").strip()
    secret = next(
        (line.removeprefix("# not echoed: ") for line in rest if line.startswith("# not echoed: ")),
        None,
    )
    return ([] if expected == "-" else [field.strip() for field in expected.split(",")]), secret


def assert_refused(output: str, source: str, expected: list[str], *, secret: str | None) -> None:
    """One line per expected problem, each `SOURCE: dotted.path: message`, and no traceback or
    secret."""
    assert "Traceback" not in output
    lines = output.splitlines()
    assert len(lines) == max(1, len(expected)), output
    assert all(line.startswith(f"{source}: ") for line in lines), output
    for field in expected:
        assert sum(line.startswith(f"{source}: {field}: ") for line in lines) == 1, (
            f"no line names {field}:\n{output}"
        )
    if secret is not None:
        assert secret not in output


def assert_nothing_written(cwd: Path, store: Path) -> None:
    # No mlflow.db, mlruns/ or sweep-results/ (or anything else) where the command ran.
    assert list(cwd.iterdir()) == []
    assert not store.exists()


def invoke(command: str, path: Path, store: Path, expected: list[str]) -> Result:
    args = [command, str(path)]
    # --tracking-uri overrides mlflow.tracking_uri, so it would hide the problem a file has there.
    if command == "run" and "mlflow.tracking_uri" not in expected:
        args += ["--tracking-uri", f"sqlite:///{store}"]
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("path", CORPUS, ids=lambda path: path.stem)
def test_corpus_file_exits_2_with_one_line_per_problem(path, command, workdir, tmp_path):
    expected, secret = expectations(path)
    store = tmp_path / "mlflow.db"
    result = invoke(command, path, store, expected)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert_refused(result.stderr, str(path), expected, secret=secret)
    assert_nothing_written(workdir, store)


def test_corpus_covers_the_issue():
    # At least 40 broken files, among them every kind the issue lists.
    names = {path.stem for path in CORPUS}
    assert len(names) >= 40
    assert {
        "empty",
        "binary",
        "top_level_list",
        "grid_search",
        "tracking_uri_credentials",
        "name_with_spaces",
    } <= names


def write_zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def write_random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(0).randbytes(512))


GENERATED = {
    "zero_bytes": write_zero_bytes,
    "directory": Path.mkdir,
    "random_bytes": write_random_bytes,
    "missing": lambda path: None,
}


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("make", GENERATED.values(), ids=GENERATED.keys())
def test_file_that_is_no_sweep_file_exits_2(make, command, workdir, tmp_path):
    # Files the corpus cannot hold (no header line fits in them, or git keeps no empty folder).
    path = tmp_path / "inputs" / "sweep.yaml"
    path.parent.mkdir()
    make(path)
    store = tmp_path / "mlflow.db"
    result = invoke(command, path, store, [])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert_refused(result.stderr, str(path), [], secret=None)
    assert_nothing_written(workdir, store)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "yaml_unclosed_bracket",
        "unknown_nested_key",
        "tracking_uri_credentials",
        "binary",
        "backbone_state_dict_without_normalization",
    ],
)
def test_installed_cli_refuses_like_in_process(name, tmp_path):
    path = REPO / "tests" / "bad_inputs" / f"{name}.yaml"
    expected, secret = expectations(path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    store = tmp_path / "mlflow.db"
    args = ["run", str(path)] + (
        [] if "mlflow.tracking_uri" in expected else ["--tracking-uri", f"sqlite:///{store}"]
    )
    result = run_sweep_cli(*args, cwd=cwd, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert_refused(result.stderr, str(path), expected, secret=secret)
    assert_nothing_written(cwd, store)


# Property tests: random damage to a valid sweep file never gives a traceback.

VALID_SWEEP = yaml.safe_load(SEARCH_YAML)
# Keys the schema knows, so random sections and distributions sometimes look nearly right.
KNOWN_KEYS = sorted(
    {*VALID_SWEEP, *DISTRIBUTIONS, *GRID_KEYS, *TRIAL_PARAMS, "arch", "hidden", "low", "high"}
)
KEYS = (
    st.sampled_from(KNOWN_KEYS)
    | st.text(max_size=8)
    | st.none()
    | st.integers(-3, 3)
    | st.booleans()
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**400), 10**400)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(KNOWN_KEYS)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=8,
)


Draw = Callable[[st.SearchStrategy], Any]


def pick_container(raw: dict, draw: Draw) -> dict | list:
    """A random mapping or list inside the sweep, the top level included."""
    node = raw
    while True:
        children = [
            child
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list)) and child
        ]
        if not children or draw(st.booleans()):
            return node
        node = draw(st.sampled_from(children))


def mutate(raw: dict, draw: Draw) -> None:
    node = pick_container(raw, draw)
    if isinstance(node, list):  # never empty: pick_container skips empty ones
        index = draw(st.integers(0, len(node) - 1))
        if draw(st.booleans()):
            del node[index]
        else:
            node[index] = draw(VALUES)
        return
    if not node:
        node[draw(KEYS)] = draw(VALUES)
        return
    key = draw(st.sampled_from(list(node)))
    operation = draw(st.sampled_from(["delete", "replace", "rename", "add"]))
    if operation == "delete":  # at the top level: a whole section dropped
        del node[key]
    elif operation == "replace":
        node[key] = draw(VALUES)
    elif operation == "rename":
        node[draw(KEYS)] = node.pop(key)
    else:
        node[draw(KEYS)] = draw(VALUES)


def assert_one_line_per_problem(error: ConfigError, source: str) -> None:
    lines = str(error).splitlines()
    assert len(lines) == len(error.problems)
    assert all(line.startswith(f"{source}: ") for line in lines), str(error)
    assert "!r}" not in str(error)  # a message template left unformatted


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_sweep_validates_or_is_refused_line_by_line(data):
    raw = copy.deepcopy(VALID_SWEEP)
    for _ in range(data.draw(st.integers(1, 4))):
        mutate(raw, data.draw)
    try:
        validate_sweep(raw, source="x.yaml")
    except ConfigError as error:
        assert_one_line_per_problem(error, "x.yaml")


YAML_BYTES = st.sampled_from([*b":-[]{}#&*!|>'\"%@`,?\n\t 0.e", 0x00, 0xFF, 0xC3]) | st.integers(
    0, 255
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "replace"]),
            st.floats(0, 1, exclude_max=True),
            YAML_BYTES,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_byte_edited_sweep_file_loads_or_is_refused_line_by_line(edits, tmp_path):
    text = bytearray(SEARCH_YAML.encode())
    for operation, where, byte in edits:
        at = int(where * len(text))
        if operation == "insert":
            text[at:at] = bytes([byte])
        elif operation == "replace":
            text[at : at + 1] = bytes([byte])
        else:
            del text[at : at + 1]
    path = tmp_path / "sweep.yaml"
    path.write_bytes(bytes(text))
    try:
        load_sweep(path)
    except ConfigError as error:
        assert_one_line_per_problem(error, str(path))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(number=st.from_regex(r"[-+]?[0-9._]{0,4}[eE][-+]?[0-9]{0,3}", fullmatch=True))
def test_number_like_scalar_loads_or_is_refused_line_by_line(number, tmp_path):
    # The sweep loader reads `1e3` as a number; nothing that merely looks like one may crash it.
    path = tmp_path / "sweep.yaml"
    path.write_text(f"name: x\nparams:\n  lr: {number}\n")
    try:
        load_sweep(path)
    except ConfigError as error:
        assert_one_line_per_problem(error, str(path))


def test_integer_beyond_float_range_is_refused_not_a_traceback():
    raw = copy.deepcopy(VALID_SWEEP)
    raw["params"]["batch_size"] = 10**400
    try:
        validate_sweep(raw, source="x.yaml")
    except ConfigError as error:
        assert_one_line_per_problem(error, "x.yaml")
