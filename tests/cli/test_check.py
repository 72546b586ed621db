"""`sweep check`: the lecture's sanity checks through the real CLI, no Ray."""
from __future__ import annotations

from click.testing import CliRunner

from cli import cli
from tests.conftest import REPO


def check(*args: str):
    return CliRunner().invoke(cli, ["check", str(REPO / "search.yaml"), *args])


def test_default_sweep_passes_every_check():
    result = check()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("checking mlp on digits with lr=0.01 ")  # geometric middle of [1e-4, 1]
    assert any(line.startswith("PASS  initial loss: 2.3") and "expected ln(10) = 2.303" in line for line in lines)
    assert any(line.startswith("PASS  overfit 20 examples: train accuracy 100.0%") for line in lines)
    assert any(line.startswith("PASS  gradients finite") for line in lines)


def test_huge_relu_biases_fail_the_initial_loss_check_and_exit_1():
    # Biases of 50 through ReLUs make huge logits: the loss starts far above ln(10).
    result = check("--set", "params.bias_init=50", "--set", "params.init=he", "--set", "params.batch_norm=false", "--set", "params.activation=relu")
    assert result.exit_code == 1, result.output
    assert any(line.startswith("FAIL  initial loss") for line in result.output.splitlines())


def test_saturated_sigmoids_fail_the_overfit_check():
    # Biases of 50 pin every sigmoid at 1: no gradient flows, the model cannot even memorize 20 examples.
    result = check("--set", "params.bias_init=50", "--set", "params.init=he", "--set", "params.batch_norm=false", "--set", "params.activation=sigmoid")
    assert result.exit_code == 1, result.output
    assert any(line.startswith("FAIL  overfit 20 examples") for line in result.output.splitlines())


def test_check_takes_the_same_overrides_and_errors_as_run():
    result = check("--set", "model={arch: cnn, channels: [16, 32]}", "--set", "params.activation=relu", "--set", "params.init=he")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("checking cnn on digits")
    bad = check("--set", "params.lr=-1")
    assert bad.exit_code == 2 and "params.lr: must be > 0, got -1" in bad.output
