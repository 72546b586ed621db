"""The plan: what a run needs, derived from the validated sweep file, each default written once."""

from __future__ import annotations

import dataclasses

from sweeps.driver.planning.plan import epochs_a_trial_may_end, plan_sweep
from sweeps.driver.sweep_file.schema import TrainConfig
from sweeps.driver.sweep_file.validation import validate_sweep
from sweeps.trial_settings import DiagnosticsSettings, TrialSettings


def minimal(**sections):
    return validate_sweep(
        {"name": "plan", "params": {"lr": {"log_uniform": [1.0e-3, 1.0]}}, **sections},
        source="test",
    )


def test_trial_settings_carry_no_defaults_of_their_own():
    for settings in (TrialSettings, DiagnosticsSettings):
        assert all(
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            for field in dataclasses.fields(settings)
        )


def test_trial_settings_come_from_the_schemas_defaults():
    settings = plan_sweep(minimal()).trial_settings
    assert settings.checkpoint_min_interval_s == TrainConfig().checkpoint_min_interval_s == 10
    assert settings.arch == "mlp" and settings.model_options == {"hidden": [128, 128, 128]}
    assert settings.diagnostics.histogram_epochs == {1, 4, 16, 20}


def test_asha_rungs_and_the_epochs_a_trial_may_end_at():
    assert epochs_a_trial_may_end(minimal(train={"epochs": 20})) == [1, 4, 16, 20]
    assert epochs_a_trial_may_end(
        minimal(train={"epochs": 20}, early_stopping={"scheduler": "none"})
    ) == [20]
    assert epochs_a_trial_may_end(
        minimal(train={"epochs": 10}, early_stopping={"grace_period": 2, "reduction_factor": 2.5})
    ) == [2, 5, 10]
    assert plan_sweep(minimal(early_stopping={"scheduler": "none"})).asha is None


def test_the_parent_runs_params_and_sweep_file_leave_the_tracking_uri_out():
    plan = plan_sweep(minimal(mlflow={"tracking_uri": "sqlite:///x.db"}))
    assert plan.parent_params["params.lr"] == {"log_uniform": [1.0e-3, 1.0]}
    assert plan.parent_params["train.epochs"] == 20
    assert not any(key.startswith("mlflow.tracking") for key in plan.parent_params)
    assert "x.db" not in plan.sweep_yaml


def test_a_weights_file_named_relative_to_the_sweep_reaches_trials_as_an_absolute_path(
    tmp_path, monkeypatch
):
    # Ray Tune starts each trial in a folder of its own, where the relative name would find nothing.
    (tmp_path / "backbone.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    pretrained = {"arch": "pretrained", "backbone": "resnet18"}
    # A state_dict file does not say how its images were normalized: the sweep file states it.
    imagenet = {"normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
    assert plan_sweep(
        minimal(model=pretrained | {"weights": "backbone.pt"}, data=imagenet)
    ).trial_settings.model_options["weights"] == str(tmp_path / "backbone.pt")
    # A torchvision weights name is not a file, and stays as written.
    named = "ResNet18_Weights.IMAGENET1K_V1"
    assert (
        plan_sweep(minimal(model=pretrained | {"weights": named})).trial_settings.model_options[
            "weights"
        ]
        == named
    )
