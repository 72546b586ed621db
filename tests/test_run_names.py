"""A trial's name as a person scans it: its number, then the values it drew, words before
numbers."""

from __future__ import annotations

from sweeps.run_names import short_number, trial_run_name


def test_a_trial_is_named_by_its_number_and_the_values_that_vary():
    config = {
        "lr": 0.0353,
        "weight_decay": 1.2e-5,
        "activation": "relu",
        "init": "he",
        "batch_norm": True,
        "momentum": 0.9,
    }
    sampled = ["lr", "weight_decay", "activation", "init", "batch_norm"]
    assert (
        trial_run_name("train_trial_5f1c2_00003", config, sampled)
        == "t03 relu he bn lr=3.5e-2 wd=1.2e-5"
    )
    assert (
        trial_run_name("train_trial_5f1c2_00012", config | {"batch_norm": False}, ["batch_norm"])
        == "t12 no-bn"
    )
    # not Tune's shape: its id stays
    assert trial_run_name("odd-id", {"batch_size": 64}, ["batch_size"]) == "odd-id bs=64"


def test_numbers_are_short_and_small_ones_exponents():
    assert [short_number(value) for value in (0.035, 0.9, 64, 1.2e-5, 250.0, 0.0)] == [
        "3.5e-2",
        "0.9",
        "64",
        "1.2e-5",
        "250",
        "0",
    ]
    # A diverged trial's update ratio: shown, not a crash of the figure that annotates it.
    assert [short_number(value) for value in (float("inf"), float("nan"))] == ["inf", "nan"]
