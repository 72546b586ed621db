"""Input that is not a sweep file, or is one built to hurt: refused in one line, exit 2, nothing
written.

Files that hang or fill memory when read naively (a FIFO, /dev/zero, a huge file), YAML
built to blow up (alias bombs, also through --set), duplicate keys, numbers past their
types, and a hypothesis fuzz of sweep files and --set values through the CLI itself.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, free_port, invoke

SEARCH_YAML = (REPO / "search.yaml").read_text()
VALID_SWEEP = yaml.safe_load(SEARCH_YAML)
ALIAS_BOMB = (
    "{a: &a [x,x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c "
    "[*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]}"
)


def assert_refused_in_one_line(result, *, names: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert names in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["validate", "run", "check"])
def test_a_fifo_is_refused_at_once_instead_of_hanging(command, workdir, tmp_path):
    fifo = tmp_path / "sweep.yaml"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    result = invoke(command, str(fifo))
    assert_refused_in_one_line(result, names=f"{fifo}: is not a regular file")
    assert list(workdir.iterdir()) == []


def test_a_device_is_refused_instead_of_read_to_the_end(workdir):
    result = invoke("validate", "/dev/zero")
    assert_refused_in_one_line(result, names="/dev/zero: is not a regular file")


def test_a_file_past_the_size_limit_is_refused(workdir, tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text(SEARCH_YAML + "# padding\n" * 200_000)  # about 2 MiB of comments
    result = invoke("validate", str(huge))
    assert_refused_in_one_line(result, names="larger than 1024 KiB")


def test_an_alias_bomb_through_set_is_refused(workdir):
    result = invoke("validate", str(REPO / "search.yaml"), "--set", f"params.bomb={ALIAS_BOMB}")
    assert_refused_in_one_line(
        result, names="values once its YAML aliases are expanded, more than the 10000"
    )


def test_a_duplicate_key_through_set_names_both(workdir):
    result = invoke("validate", str(REPO / "search.yaml"), "--set", "train={epochs: 3, epochs: 4}")
    assert_refused_in_one_line(result, names="--set: train.epochs: duplicate key 'epochs'")


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ("--seed=-1", "search.seed"),
        ("--seed=4294967296", "search.seed"),
        ("--num-samples=0", "search.num_samples"),
    ],
)
def test_run_options_past_their_range_are_refused(option, field, workdir):
    result = invoke("run", str(REPO / "search.yaml"), option)
    assert_refused_in_one_line(result, names=f"{REPO / 'search.yaml'}: {field}:")
    assert list(workdir.iterdir()) == []


def test_a_webhook_to_a_metadata_address_is_accepted_only_when_the_user_says_so(workdir):
    args = [
        "validate",
        str(REPO / "search.yaml"),
        "--set",
        "diagnostics.alert_webhook=http://169.254.169.254/x",
    ]
    assert_refused_in_one_line(
        invoke(*args), names="diagnostics.alert_webhook: 169.254.169.254 is a link-local address"
    )
    assert invoke(*args, "--set", "diagnostics.alert_webhook_allow_private=true").exit_code == 0


# A fuzz of whole sweep files and --set values through the CLI: `run` is pointed at a Ray
# address nobody listens on, so a file that validates fails fast too, before writing anything.

KEYS = st.sampled_from(
    sorted({*VALID_SWEEP, "lr", "params", "epochs", "seed", "choice", "log_uniform", "int_uniform"})
) | st.text(max_size=6)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(
        [".inf", ".nan", "&a [1]", "*a", "{a: 1, a: 2}", "!!python/object:os.system", "1e400", "-1"]
    )
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=6,
)
PATHS = st.sampled_from(
    [
        "name",
        "params.lr",
        "params.batch_size",
        "train.epochs",
        "search.seed",
        "search.num_samples",
        "storage.path",
        "mlflow.tracking_uri",
        "diagnostics.alert_webhook",
        "data.val_fraction",
        "params",
        "train",
        "resources.gpus_per_trial",
    ]
)


def set_value(raw: dict, path: str, value) -> None:
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
    node[last] = value


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(st.tuples(PATHS, VALUES), max_size=3),
    overrides=st.lists(st.tuples(PATHS, SCALARS), max_size=2),
)
def test_fuzzed_sweep_files_and_overrides_exit_0_or_2_in_one_line_each_and_write_nothing(
    edits, overrides, tmp_path
):
    raw = copy.deepcopy(VALID_SWEEP)
    for path, value in edits:
        set_value(raw, path, value)
    # one per example: hypothesis reuses the test's tmp_path
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    sweep = folder / "sweep.yaml"
    sweep.write_text(yaml.safe_dump(raw, allow_unicode=True))
    sets = [f"--set={path}={value}" for path, value in overrides]
    here = os.getcwd()
    os.chdir(folder)
    try:
        for command in (["validate"], ["run", "--address", f"127.0.0.1:{free_port()}"]):
            result = invoke(command[0], str(sweep), *command[1:], *sets)
            assert result.exit_code in (0, 2), (result.output, result.exception)
            assert "Traceback" not in result.output
            if result.exit_code == 2:
                assert all(
                    line.startswith((f"{sweep}: ", "--set: "))
                    for line in result.stderr.strip().splitlines()
                ), result.stderr
            assert sorted(path.name for path in folder.iterdir()) == [
                "sweep.yaml"
            ]  # no mlflow.db, mlruns/ or sweep-results/
    finally:
        os.chdir(here)
