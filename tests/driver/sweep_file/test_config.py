"""The sweep file contract: good files validate, bad ones exit 2 with the file and field named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli import cli
from sweeps.driver.sweep_file.reading import load_sweep, parse_override
from sweeps.driver.sweep_file.validation import ConfigError
from tests.conftest import REPO

MINIMAL = """
name: tiny
params:
  lr: {log_uniform: [1.0e-3, 1.0e-1]}
"""


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def validate(path: Path, *extra: str):
    return CliRunner().invoke(cli, ["validate", str(path), *extra])


def test_default_search_yaml_validates():
    result = validate(REPO / "search.yaml")
    assert result.exit_code == 0, result.output
    assert "sampled at random: lr, weight_decay, activation, init, batch_norm" in result.output
    assert "trials: 16 (seed 0)" in result.output


def test_minimal_file_gets_defaults(tmp_path):
    config = load_sweep(write(tmp_path, MINIMAL))
    assert config.experiment_name == "tiny"
    assert config.model.hidden == [128, 128, 128]
    assert config.early_stopping.scheduler == "asha"
    assert config.data.dataset == "digits"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (
            "name: x\nparams: {lr: {log_uniform: [-3, 1]}}",
            "params.lr",
            "lower bound must be > 0, got -3",
        ),
        ("name: x\nparams: {lr: {log_uniform: [1.0, 1.0e-3]}}", "params.lr", "low < high"),
        ("name: x\nparams: {lr: {log_uniform: [1.0e-3]}}", "params.lr", "[low, high]"),
        ("name: x\nparams: {lr: {grid_search: [0.1, 0.01]}}", "params.lr", "Bergstra & Bengio"),
        ("name: x\nparams: {lr: {grid: [0.1, 0.01]}}", "params.lr", "random"),
        (
            "name: x\nparams: {lr: {loguniform: [0.1, 1]}}",
            "params.lr",
            "did you mean 'log_uniform'",
        ),
        ("name: x\nparams: {lr: [0.1, 0.01]}", "params.lr", "{choice: [0.1, 0.01]}"),
        (
            "name: x\nparams: {lr: {uniform: [0, 1], choice: [1]}}",
            "params.lr",
            "exactly one distribution",
        ),
        ("name: x\nparams: {lr: {choice: []}}", "params.lr", "non-empty list"),
        ("name: x\nparams: {learning_rate: 0.1}", "params.learning_rate", "unknown parameter"),
        ("name: x\nparams: {activaton: relu}", "params.activaton", "did you mean 'activation'"),
        (
            "name: x\nparams: {activation: {choice: [relu, swish]}}",
            "params.activation.choice[1]",
            "unknown activation 'swish'",
        ),
        (
            "name: x\nparams: {init: glorot}",
            "params.init",
            "choose from ['default', 'he', 'small_random', 'xavier']",
        ),
        ("name: x\nparams: {batch_norm: maybe}", "params.batch_norm", "true or false"),
        (
            "name: x\nparams: {batch_size: {uniform: [16, 64]}}",
            "params.batch_size.uniform",
            "int_uniform",
        ),
        (
            "name: x\nparams: {batch_size: {int_uniform: [16.5, 64]}}",
            "params.batch_size",
            "integers",
        ),
        (
            "name: x\nparams: {activation: {log_uniform: [1, 2]}}",
            "params.activation.log_uniform",
            "choice",
        ),
        ("name: x\nparams: {momentum: 1.5}", "params.momentum", "[0, 1)"),
        ("name: x\nparams: {lr: .nan}", "params.lr", "finite"),
        ("name: x\nparams: {lr: 0.1}\ntrain: {epochs: 0}", "train.epochs", "greater than 0, got 0"),
        (
            "name: x\nparams: {lr: 0.1}\ntrain: {optimzer: adam}",
            "train.optimzer",
            "did you mean 'optimizer'",
        ),
        (
            "name: x\nparams: {lr: 0.1}\ntrain: {optimizer: rmsprop}",
            "train.optimizer",
            "'sgd' or 'adam'",
        ),
        ("name: x\nparams: {lr: 0.1}\nsearch: {num_samples: -4}", "search.num_samples", "got -4"),
        ("name: x\nparams: {lr: 0.1}\nsearch: {metric: val_loss}", "search.mode", "'min'"),
        ("name: x\nparams: {lr: 0.1}\ndata: {dataset: imagenet}", "data.dataset", "'digits'"),
        (
            "name: x\nparams: {lr: 0.1}\ndata: {val_fraction: 1.5}",
            "data.val_fraction",
            "less than 1",
        ),
        (
            "name: x\nparams: {lr: 0.1}\nresources: {cpus_per_trial: -0.5}",
            "resources.cpus_per_trial",
            "greater than 0",
        ),
        (
            "name: x\nparams: {lr: 0.1}\nearly_stopping: {grace_period: 50}",
            "early_stopping.grace_period",
            "at most train.epochs",
        ),
        (
            "name: x\nparams: {lr: 0.1}\nmodel: {hidden: [64, -1]}",
            "model.hidden.1",
            "greater than 0",
        ),
        ("name: x\nparams: {lr: 0.1}\nmodle: {arch: mlp}", "modle", "did you mean 'model'"),
        ("params: {lr: 0.1}", "name", "required field is missing"),
        ("name: x", "params", "required field is missing"),
        ("name: 'has spaces'\nparams: {lr: 0.1}", "name", "pattern"),
    ],
)
def test_bad_field_is_one_line_naming_file_and_field(tmp_path, body, field, says):
    path = write(tmp_path, body)
    result = validate(path)
    assert result.exit_code == 2, result.output
    line = next(line for line in result.output.splitlines() if line.startswith(f"{path}: {field}:"))
    assert says in line
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "is empty"),
        ("name: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file"),
    ],
)
def test_unreadable_files_exit_2(tmp_path, content, says):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = validate(path)
    assert result.exit_code == 2
    assert result.output.startswith(f"{path}: ") and says in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_directory_and_missing_file_exit_2(tmp_path):
    assert "is a directory" in validate(tmp_path).output
    assert validate(tmp_path).exit_code == 2
    missing = validate(tmp_path / "nope.yaml")
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_every_problem_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        "name: x\nparams: {lr: {log_uniform: [0, 1]}, activaton: relu}\ntrain: {epochs: -1}",
    )
    with pytest.raises(ConfigError) as raised:
        load_sweep(path)
    fields = {path for path, _ in raised.value.problems}
    assert fields == {"params.lr", "params.activaton", "train.epochs"}


def test_set_overrides_are_yaml_and_validated(tmp_path):
    path = write(tmp_path, MINIMAL)
    overrides = [
        parse_override(text)
        for text in [
            "train.epochs=2",
            "params.lr=0.01",
            "model.hidden=[64,64]",
            "params.batch_norm=true",
        ]
    ]
    config = load_sweep(path, overrides)
    assert config.train.epochs == 2
    assert config.params["lr"] == 0.01
    assert config.model.hidden == [64, 64]
    assert config.params["batch_norm"] is True

    bad = validate(path, "--set", "train.epochs=zero")
    assert bad.exit_code == 2 and f"{path}: train.epochs:" in bad.output
    unknown = validate(path, "--set", "train.epoch=3")
    assert unknown.exit_code == 2 and "did you mean 'epochs'" in unknown.output
    malformed = validate(path, "--set", "train.epochs")
    assert malformed.exit_code == 2 and "expected dotted.key=value" in malformed.output


def test_validate_output_round_trips(tmp_path):
    """The resolved sweep that validate prints is itself a valid sweep file."""
    result = validate(REPO / "search.yaml", "--set", "train.epochs=3")
    resolved = result.output.split("\n", 1)[1].split("\nsampled at random")[0]
    again = load_sweep(write(tmp_path, resolved))
    assert again.train.epochs == 3
    assert again.params == yaml.safe_load((REPO / "search.yaml").read_text())["params"]


def test_every_command_has_help():
    import click

    def leaves(group: click.Group, path: list[str]):
        for name, command in group.commands.items():
            assert command.help and command.help.strip(), path + [name]
            if isinstance(command, click.Group):
                yield from leaves(command, path + [name])
            else:
                yield path + [name]

    commands = list(leaves(cli, []))
    assert ["k8s", "render"] in commands and ["run"] in commands
    for path in commands:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, path


def test_readme_lists_every_trial_parameter_with_its_default():
    from sweeps.trial_params import TRIAL_PARAMS

    readme = (REPO / "README.md").read_text()
    for name, param in TRIAL_PARAMS.items():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, name
        default = (
            str(param.default).lower() if isinstance(param.default, bool) else str(param.default)
        )
        assert f"| {default} |" in row, (name, row)


def test_ci_runs_the_readme_test_command():
    command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"{command}\n```" in (REPO / "README.md").read_text()


def test_ci_checks_style_and_types_before_the_tests():
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    checks = ["ruff check .", "ruff format --check .", "mypy"]
    assert all(check in lines for check in checks)
    assert max(lines.index(check) for check in checks) < len(lines) - 1  # before the tests


def test_architecture_configs_match_the_model_registry():
    from models import ARCHITECTURES
    from sweeps.driver.sweep_file.schema import MODEL_CONFIGS

    assert set(MODEL_CONFIGS) == set(ARCHITECTURES)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "resnet", "pretrained"])
def test_arch_alone_is_a_valid_model_section(tmp_path, arch):
    config = load_sweep(write(tmp_path, MINIMAL + f"model: {{arch: {arch}}}\n"))
    assert config.model.arch == arch


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (
            "model: {arch: cnn, hidden: [8]}",
            "model.hidden",
            "valid keys: ['arch', 'channels', 'head_pool']",
        ),
        ("model: {arch: vit}", "model.arch", "choose from ['cnn', 'mlp', 'pretrained', 'resnet']"),
        ("model: {arch: resnet, widths: [0]}", "model.widths.0", "greater than 0"),
        ("data: {dataset: mnist}", "data.root", "needs data.root"),
        ("data: {preprocess: whiten}", "data.preprocess", "'standardize'"),
        ("data: {synthetic: {shape: [3, 32]}}", "data.synthetic.shape", "at least 3"),
    ],
)
def test_model_and_data_section_errors(tmp_path, body, field, says):
    path = write(tmp_path, MINIMAL + body + "\n")
    result = validate(path)
    assert result.exit_code == 2
    assert any(
        line.startswith(f"{path}: {field}:") and says in line for line in result.output.splitlines()
    ), result.output


def test_trainable_layers_only_for_pretrained(tmp_path):
    path = write(tmp_path, "name: x\nparams: {trainable_layers: 2}\n")
    result = validate(path)
    assert (
        result.exit_code == 2
        and "params.trainable_layers: only applies to model.arch: pretrained" in result.output
    )
    assert (
        validate(
            write(tmp_path, "name: x\nparams: {trainable_layers: 2}\nmodel: {arch: pretrained}\n")
        ).exit_code
        == 0
    )


@pytest.mark.parametrize(
    "example",
    sorted((REPO / "examples").rglob("*.yaml")),
    ids=lambda path: str(path.relative_to(REPO / "examples")),
)
def test_examples_validate(example):
    result = validate(example)
    assert result.exit_code == 0, result.output
