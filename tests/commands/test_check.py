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
    # geometric middle of [1e-4, 1]
    assert lines[0].startswith("checking mlp on digits with lr=0.01 ")
    assert any(
        line.startswith("PASS  initial loss: 2.3") and "expected ln(10) = 2.303" in line
        for line in lines
    )
    assert any(
        line.startswith("PASS  overfit 20 examples: train accuracy 100.0%") for line in lines
    )
    assert any(line.startswith("PASS  gradients finite") for line in lines)


def test_huge_relu_biases_fail_the_initial_loss_check_and_exit_1():
    # Biases of 50 through ReLUs make huge logits: the loss starts far above ln(10).
    result = check(
        "--set",
        "params.bias_init=50",
        "--set",
        "params.init=he",
        "--set",
        "params.batch_norm=false",
        "--set",
        "params.activation=relu",
    )
    assert result.exit_code == 1, result.output
    assert any(line.startswith("FAIL  initial loss") for line in result.output.splitlines())


def test_saturated_sigmoids_fail_the_overfit_check():
    # Biases of 50 pin every sigmoid at 1: no gradient flows, the model cannot even memorize 20
    # examples.
    result = check(
        "--set",
        "params.bias_init=50",
        "--set",
        "params.init=he",
        "--set",
        "params.batch_norm=false",
        "--set",
        "params.activation=sigmoid",
    )
    assert result.exit_code == 1, result.output
    assert any(line.startswith("FAIL  overfit 20 examples") for line in result.output.splitlines())


def test_check_takes_the_same_overrides_and_errors_as_run():
    result = check(
        "--set",
        "model={arch: cnn, channels: [16, 32]}",
        "--set",
        "params.activation=relu",
        "--set",
        "params.init=he",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("checking cnn on digits")
    bad = check("--set", "params.lr=-1")
    assert bad.exit_code == 2 and "params.lr: must be > 0, got -1" in bad.output


def test_check_says_which_frozen_features_a_sweep_caches(tmp_path):
    import torch
    import torchvision

    from tests.conftest import write_sweep

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "backbone.pt")
    path = write_sweep(
        tmp_path,
        {
            "name": "probe",
            "data": {
                "dataset": "synthetic",
                "synthetic": {"num_examples": 64, "shape": [3, 32, 32]},
                "normalization": {"mean": [0.5], "std": [0.25]},
            },
            "model": {"arch": "pretrained", "weights": str(tmp_path / "backbone.pt")},
            "params": {"lr": 0.01, "trainable_layers": {"choice": [0, 5]}},
            "search": {"num_samples": 8},
        },
    )
    result = CliRunner().invoke(cli, ["check", str(path)])
    # a random backbone may fail a check
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = result.output.splitlines()
    assert (
        "frozen features: trainable_layers=0: cached, conv1 to avgpool of resnet18 frozen, 512 "
        "numbers per image" in lines
    )
    assert (
        "frozen features: trainable_layers=5: not cached, conv1 gives 16384 numbers per image, "
        "more than the 3072 of the image the backbone sees" in lines
    )
    augmented = CliRunner().invoke(cli, ["check", str(path), "--set", "data.augment=crop_flip"])
    assert (
        "frozen features: not cached: data.augment: crop_flip changes every batch's images, so "
        "every batch runs the whole backbone" in augmented.output
    )
