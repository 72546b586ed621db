"""Update/weight ratios, activation statistics and alerts: the measurements, then a real sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from models import build_model
from sweeps.trial.diagnostics import AlertTracker
from sweeps.trial.measurements import SoloModel, measure_activations, update_ratios
from sweeps.trial.training import run_training, steps_per_epoch
from tests.conftest import diagnostics_settings, digits, trial_settings


def test_update_ratio_is_the_real_change_over_the_weights():
    model = build_model("mlp", input_shape=(4,), num_classes=2, hidden=[8])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(16, 4)).sum().backward()
    named = SoloModel(model, "trial").weights()
    assert [name for name, _ in named] == [
        "layers.0.weight",
        "layers.3.weight",
    ]  # weights only, no biases
    weight, grad = model.layers[0].weight.detach().clone(), model.layers[0].weight.grad.clone()
    before = [tensor.detach().clone() for _, tensor in named]
    optimizer.step()
    [ratios] = update_ratios(before, [tensor for _, tensor in named])  # one member
    # Plain SGD's first step moves W by lr * grad.
    assert ratios[0] == pytest.approx((0.1 * grad).norm().item() / weight.norm().item(), rel=1e-5)


def test_alert_needs_patience_and_fires_once_per_parameter_and_direction():
    tracker = AlertTracker(
        diagnostics_settings({"update_ratio": {"low": 1e-4, "high": 1e-2, "patience": 3}})
    )
    assert tracker.observe({"w": 0.5}, step=1) == []
    assert tracker.observe({"w": 0.5}, step=2) == []
    [alert] = tracker.observe({"w": 0.5}, step=3)
    assert (alert.parameter, alert.direction, alert.step, alert.hint) == (
        "w",
        "too_high",
        3,
        "learning rate is likely too high",
    )
    assert tracker.observe({"w": 0.5}, step=4) == []  # no floods
    # back in the band resets nothing already raised
    assert tracker.observe({"w": 1e-3}, step=5) == []
    assert [a.direction for a in tracker.observe({"w": float("nan")}, step=6)] == ["nonfinite"]
    assert [a.parameter for a in tracker.observe_loss(float("inf"), step=7)] == ["loss"]


def test_a_streak_broken_inside_the_band_does_not_alert():
    tracker = AlertTracker(diagnostics_settings({"update_ratio": {"patience": 3}}))
    for step, value in enumerate([0.5, 0.5, 1e-3, 0.5, 0.5]):
        assert tracker.observe({"w": value}, step=step) == []


def test_no_alert_while_training_warms_up_nor_for_weights_batch_norm_makes_scale_free():
    tracker = AlertTracker(
        diagnostics_settings({"update_ratio": {"patience": 2}}), normalized={"bn_fed"}
    )
    # The spike of the first steps: measured, never alerted.
    assert tracker.observe({"w": 0.5}, step=20, warm=False) == []
    assert tracker.observe({"w": 0.5}, step=40, warm=False) == []
    assert tracker.observe({"w": 0.5}, step=120) == []  # the streak starts once warm
    assert [a.parameter for a in tracker.observe({"w": 0.5, "bn_fed": 0.5}, step=140)] == ["w"]
    assert (
        tracker.observe({"bn_fed": 1e-9}, step=160)
        == tracker.observe({"bn_fed": 1e-9}, step=180)
        == []
    )
    assert [a.direction for a in tracker.observe({"bn_fed": float("nan")}, step=200)] == [
        "nonfinite"
    ]


@pytest.mark.parametrize(
    ("arch", "options", "expected"),
    [
        (
            "mlp",
            {"hidden": [8, 8]},
            {"layers.0.weight", "layers.3.weight"},
        ),  # the head (layers.6) has no batch norm after it
        ("cnn", {"channels": [4, 8]}, {"features.0.weight", "features.4.weight"}),
        (
            "resnet",
            {"widths": [4, 8]},
            {
                "stem.0.weight",
                "stages.0.residual.0.weight",
                "stages.0.residual.3.weight",
                "stages.1.residual.0.weight",
                "stages.1.residual.3.weight",
                "stages.1.shortcut.0.weight",
            },
        ),
    ],
)
def test_the_weights_batch_norm_follows_are_found_and_still_measured(arch, options, expected):
    shape = (64,) if arch == "mlp" else (1, 8, 8)
    with_bn = build_model(arch, input_shape=shape, num_classes=3, batch_norm=True, **options)
    measured = SoloModel(with_bn, "trial")
    [normalized] = measured.normalized()
    assert normalized == expected and expected < {name for name, _ in measured.weights()}
    assert SoloModel(
        build_model(arch, input_shape=shape, num_classes=3, **options), "trial"
    ).normalized() == [set()]


def probe(model, *, with_histograms):
    """One solo model's activation statistics and histograms on a random probe batch."""
    stats, histograms = measure_activations(
        SoloModel(model, "trial"), torch.randn(64, 10), with_histograms=with_histograms
    )
    return stats["trial"], histograms.get("trial", {})


def test_probing_changes_no_batch_norm_statistics_and_finds_dead_units():
    model = build_model(
        "mlp", input_shape=(10,), num_classes=2, hidden=[16], activation="relu", batch_norm=True
    )
    before = {name: buffer.clone() for name, buffer in model.named_buffers()}
    stats, histograms = probe(model, with_histograms=True)
    assert all(torch.equal(before[name], buffer) for name, buffer in model.named_buffers())
    # histogram of 32 examples
    assert set(stats) == {"layers.2"} and sum(histograms["layers.2"]["counts"]) == 32 * 16

    dead = build_model(
        "mlp",
        input_shape=(10,),
        num_classes=2,
        hidden=[16],
        activation="relu",
        init="small_random",
        bias_init=-5.0,
    )
    dead_stats, _ = probe(dead, with_histograms=False)
    assert dead_stats["layers.2"]["act_dead_frac"] == 1.0

    saturated = build_model(
        "mlp",
        input_shape=(10,),
        num_classes=2,
        hidden=[16],
        activation="tanh",
        init="small_random",
        bias_init=5.0,
    )
    saturated_stats, _ = probe(saturated, with_histograms=False)
    assert saturated_stats["layers.2"]["act_saturated_frac"] == 1.0


def test_deep_tanh_with_small_random_init_shows_collapsed_activations_at_step_0():
    reports = []
    settings = trial_settings({"model": {"hidden": [500] * 10}, "train": {"epochs": 1}})
    run_training(
        {"lr": 0.01, "activation": "tanh", "init": "small_random"},
        settings,
        digits(),
        lambda m, _: reports.append(m),
    )
    step, stats = reports[0]["diagnostics"]["activations"][0]
    assert step == 0
    assert stats["layers.29"]["act_std"] < 1e-3 * stats["layers.2"]["act_std"]


@pytest.mark.parametrize(
    ("every", "probed_at"),
    [
        (
            50,
            [0, 69, 115, 161, 184],
        ),  # initialization; the epochs that pass 50, 100, 150; the last epoch
        (1, [0, 23, 46, 69, 92, 115, 138, 161, 184]),  # after every epoch
    ],
)
def test_activations_are_probed_after_epochs_that_pass_a_multiple_of_the_cadence_and_at_the_end(
    every, probed_at
):
    assert steps_per_epoch(len(digits().train_y), 64) == 23
    settings = trial_settings(
        {
            "model": {"hidden": [16]},
            "train": {"epochs": 8},
            "diagnostics": {"activations_every_n_steps": every},
            "early_stopping": {"scheduler": "none"},
        }
    )
    assert settings.diagnostics.histogram_epochs == {8}
    reports = []
    run_training({"lr": 0.01, "batch_size": 64}, settings, digits(), lambda m, _: reports.append(m))
    assert [
        step for report in reports for step, _ in report["diagnostics"]["activations"]
    ] == probed_at


def test_diagnostics_can_be_switched_off():
    reports = []
    settings = trial_settings(
        {"model": {"hidden": [16]}, "train": {"epochs": 1}, "diagnostics": {"enabled": False}}
    )
    run_training({"lr": 0.01}, settings, digits(), lambda m, _: reports.append(m))
    assert "diagnostics" not in reports[0]


@pytest.mark.slow
def test_alerts_reach_mlflow_the_webhook_and_stop_the_trial(
    tmp_path, tracking_uri, ray_connected, alert_webhook
):
    from sweeps.driver.running.launch import run_sweep
    from sweeps.driver.sweep_file.validation import validate_sweep

    config = validate_sweep(
        {
            "name": "diagnostics",
            "model": {"arch": "mlp", "hidden": [128, 128, 128]},
            "params": {
                "lr": {"choice": [2.0, 1.0e-7, 0.02]},
                "activation": "relu",
                "init": "he",
                "batch_norm": True,
            },
            "train": {"epochs": 4},
            "search": {"num_samples": 6, "seed": 1},
            "early_stopping": {"scheduler": "none"},
            # No warm-up past the first epoch (23 steps): checks at steps 40, 60, 80 make the
            # streak.
            "diagnostics": {
                "alert_webhook": alert_webhook.url,
                "stop_on": "too_high",
                "update_ratio": {"warmup_steps": 0},
            },
            "mlflow": {"tracking_uri": tracking_uri},
            "storage": {"path": str(tmp_path / "results")},
        },
        source="test",
    )
    lines: list[str] = []
    outcome = run_sweep(config, echo=lines.append)

    client = MlflowClient(tracking_uri)
    children = [
        run
        for run in client.search_runs([outcome.experiment_id])
        if "mlflow.parentRunId" in run.data.tags
    ]
    by_lr = {}
    for child in children:
        by_lr.setdefault(float(child.data.params["lr"]), []).append(child)
    assert set(by_lr) == {2.0, 1.0e-7, 0.02}

    # lr 2 makes updates too big without the loss exploding (lr 10 would end the trial as diverged).
    for run in by_lr[2.0]:
        assert run.data.tags["alert.update_ratio"].startswith("too_high: layers.")
        assert run.data.tags["sweep.status"] == "stopped_on_alert"
        assert run.data.tags["sweep.stop_reason"].startswith("too_high: layers.")
        alerts = json.loads(
            Path(
                client.download_artifacts(run.info.run_id, "alerts.json", str(tmp_path))
            ).read_text()
        )
        assert alerts[0]["direction"] == "too_high" and alerts[0]["run_id"] == run.info.run_id
        assert alerts[0]["hint"] == "learning rate is likely too high"
    for run in by_lr[1.0e-7]:
        assert "too_low: layers." in run.data.tags["alert.update_ratio"]
        assert run.data.tags["sweep.status"] == "completed"  # stop_on is too_high only
    for run in by_lr[0.02]:
        assert "alert.update_ratio" not in run.data.tags
        assert run.data.tags["sweep.status"] == "completed"
        ratios = client.get_metric_history(run.info.run_id, "update_ratio/layers.0.weight")
        assert [m.step for m in ratios][:2] == [20, 40] and all(
            1e-4 < m.value < 1e-2 for m in ratios
        )
        assert [m.step for m in client.get_metric_history(run.info.run_id, "act_std/layers.2")][
            0
        ] == 0
        artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
        assert "activation_histograms.png" in artifacts

    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.metrics["alerts_count"] == len(outcome.alerts) > 0
    alerting = {child.info.run_name for lr in (2.0, 1.0e-7) for child in by_lr[lr]}
    assert set(parent.data.tags["sweep.alerting_trials"].split(", ")) == alerting
    assert sorted(
        (a["run_id"], a["parameter"], a["direction"]) for a in alert_webhook.received
    ) == sorted((a["run_id"], a["parameter"], a["direction"]) for a in outcome.alerts)
