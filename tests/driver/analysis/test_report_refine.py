"""The second half of the lecture's loop: read a real sweep back, plot it, narrow its ranges."""

from __future__ import annotations

import csv
import io
import json
import os

import jsonschema
import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweeps.driver.analysis.importance import Importance
from sweeps.driver.analysis.refine import format_changes, refine_sweep
from sweeps.driver.analysis.report import SweepReport, TrialRow
from sweeps.driver.sweep_file.reading import load_sweep
from sweeps.driver.sweep_file.schema import json_schema
from sweeps.driver.sweep_file.validation import validate_sweep
from tests.conftest import REPO, invoke

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, empty_mlflow_db, ray_connected):
    """A real, small sweep on digits, run once for this module's tests."""
    import shutil

    from sweeps.driver.running.launch import run_sweep

    folder = tmp_path_factory.mktemp("finished-sweep")
    shutil.copy(empty_mlflow_db, folder / "mlflow.db")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = validate_sweep(
        {
            "name": "report-me",
            "model": {"arch": "mlp", "hidden": [64]},
            "params": {
                "lr": {"log_uniform": [1.0e-4, 1.0]},
                "activation": {"choice": ["relu", "tanh", "elu"]},
                "init": {"choice": ["xavier", "he"]},
                "batch_norm": {"choice": [True, False]},
            },
            "train": {"epochs": 3},
            "search": {
                "num_samples": 12,
                "seed": 4,
            },  # at least 6 compared at the rung: importance needs 5
            "early_stopping": {"grace_period": 1, "reduction_factor": 2},
            "mlflow": {"tracking_uri": tracking_uri},
            "storage": {"path": str(folder / "results")},
        },
        source="test",
    )
    # Run from another folder: a sqlite store's artifacts go beside its database, not to ./mlruns
    # here.
    here, elsewhere = os.getcwd(), tmp_path_factory.mktemp("elsewhere")
    os.chdir(elsewhere)
    try:
        outcome = run_sweep(config, echo=lambda line: None)
    finally:
        os.chdir(here)
    assert not (elsewhere / "mlruns").exists() and (folder / "mlruns" / "report-me").is_dir()
    return tracking_uri, outcome, folder


@pytest.mark.slow
def test_report_ranks_trials_at_their_best_and_at_a_common_rung(finished_sweep, tmp_path):
    tracking_uri, outcome, _ = finished_sweep
    result = invoke(
        "report",
        "report-me",
        "--tracking-uri",
        tracking_uri,
        "--top",
        "3",
        "--format",
        "json",
        "-o",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    ranked = report["trials"]
    client = MlflowClient(tracking_uri)
    children = client.search_runs(
        [outcome.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{outcome.parent_run_id}'",
    )
    histories = {
        run.info.run_id: {
            m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_acc")
        }
        for run in children
    }
    best_of = {run_id: max(history.values()) for run_id, history in histories.items()}
    assert [row["run_id"] for row in ranked] == sorted(best_of, key=best_of.get, reverse=True)[:3]
    assert [row["best"] for row in ranked] == sorted(best_of.values(), reverse=True)[:3]
    assert ranked[0]["run_id"] == outcome.best_run_id
    assert {"lr", "activation", "init", "batch_norm"} <= set(ranked[0]["params"])

    # The common rung: the latest of ASHA's epochs (1, 2, 3 here) that at least half the trials
    # reached.
    rung = report["rung"]
    reached = {
        epoch: sum(epoch in history for history in histories.values()) for epoch in (1, 2, 3)
    }
    assert rung == max(epoch for epoch, count in reached.items() if count >= 6)
    for row in ranked:
        assert row["at_rung"] == histories[row["run_id"]].get(rung)
    at_rung = sorted((h[rung] for h in histories.values() if rung in h), reverse=True)
    assert [at_rung[row["rank_at_rung"] - 1] for row in ranked if row["at_rung"] is not None] == [
        row["at_rung"] for row in ranked if row["at_rung"] is not None
    ]
    counts = {entry["value"]: entry["trials"] for entry in report["trials_per_value"]["activation"]}
    assert (
        counts
        == {
            value: sum(run.data.params["activation"] == value for run in children)
            for value in counts
        }
        and sum(counts.values()) == 12
    )
    assert [item["param"] for item in report["importance"]] and all(
        item["std"] >= 0 for item in report["importance"]
    )

    table = invoke(
        "report", outcome.parent_run_id, "--tracking-uri", tracking_uri, "-o", str(tmp_path)
    ).stdout
    lines = table.splitlines()
    assert lines[0].split()[:6] == [
        "rank",
        "val_acc",
        f"@{rung}",
        f"rank@{rung}",
        "status",
        "epochs",
    ]
    assert lines[1].split()[1] == f"{ranked[0]['best']:.4f}"
    assert "trials per value" in table and "hyperparameter importance for val_acc" in table

    csv_text = invoke(
        "report",
        "report-me",
        "--tracking-uri",
        tracking_uri,
        "--top",
        "3",
        "--format",
        "csv",
        "-o",
        str(tmp_path),
    ).stdout
    trials_block, importance_block = csv_text.split("\n\n")
    trial_rows = list(csv.DictReader(io.StringIO(trials_block)))
    assert [row["run_id"] for row in trial_rows] == [row["run_id"] for row in ranked]
    assert [row["param"] for row in csv.DictReader(io.StringIO(importance_block))] == [
        item["param"] for item in report["importance"]
    ]


@pytest.mark.slow
def test_report_writes_readable_plots_and_logs_them_on_the_sweep_run(finished_sweep, tmp_path):
    from sweeps.driver.analysis import plots
    from sweeps.driver.analysis.report import load_report
    from sweeps.driver.tracking.queries import SweepReader

    tracking_uri, outcome, _ = finished_sweep
    result = invoke(
        "report", "report-me", "--tracking-uri", tracking_uri, "-o", str(tmp_path / "plots")
    )
    assert result.exit_code == 0, result.output
    files = sorted(path.name for path in (tmp_path / "plots").iterdir())
    figures = [
        "importance.png",
        "learning_curves.png",
        "update_ratio.png",
        "val_acc_by_choice.png",
        "val_acc_vs_lr.png",
    ]
    assert files == sorted(["importance.json", *figures])
    for name in figures:
        content = (tmp_path / "plots" / name).read_bytes()
        assert content.startswith(PNG_MAGIC) and len(content) > 10_000
    logged = {
        item.path
        for item in MlflowClient(tracking_uri).list_artifacts(outcome.parent_run_id, "report")
    }
    assert logged == {f"report/{name}" for name in files}

    report = load_report(SweepReader(tracking_uri), "report-me")
    scatter = plots.metric_vs_learning_rate(report)
    at_rung, best = scatter.axes
    assert (
        at_rung.get_xscale() == "log"
        and "learning rate" in at_rung.get_xlabel()
        and f"epoch {report.rung}" in at_rung.get_title()
    )
    assert {text.get_text().split(" ")[0] for text in best.get_legend().get_texts()} == {
        str(row.params["activation"]) for row in report.trials
    }
    # Stopped-early trials are hollow in every scatter.
    stopped = sum(row.stopped_early and row.best is not None for row in report.trials)
    hollow = sum(
        len(c.get_offsets())
        for c in best.collections
        if len(c.get_facecolors()) == 0 or c.get_facecolors()[0][3] == 0
    )
    assert stopped and hollow == stopped
    ratios = plots.update_ratios(report, k=3).axes[0]
    assert ratios.get_yscale() == "log" and any(
        line.get_ydata()[0] == 1e-3 for line in ratios.get_lines()
    )
    choice = plots.metric_by_choice(report)
    varied = [
        name
        for name in ("activation", "batch_norm", "init")
        if len({repr(row.params[name]) for row in report.trials}) > 1
    ]
    # one panel per param that varied
    assert varied and [axis.get_xlabel() for axis in choice.axes] == varied
    assert all("n=" in label.get_text() for axis in choice.axes for label in axis.get_xticklabels())
    curves = plots.learning_curves(report, k=3).axes[0]
    lowest_with_two_epochs = min(
        v for row in report.top(3) if len(row.history) > 1 for _, v in row.history
    )
    assert (
        curves.get_ylim()[0] >= lowest_with_two_epochs - 0.05 * (1 - lowest_with_two_epochs) - 0.05
    )


@pytest.mark.slow
def test_refine_writes_the_users_file_with_only_the_changed_values(
    finished_sweep, tmp_path, monkeypatch
):
    tracking_uri, outcome, folder = finished_sweep
    written = (
        "# yaml-language-server: $schema=./sweep.schema.json\n"
        "# my coarse sweep\n"
        "name: report-me\n"
        "model: {arch: mlp, hidden: [64]}\n"
        "params:\n"
        "  lr: {log_uniform: [1.0e-4, 1.0]}   # the lecture's range\n"
        "  activation: {choice: [relu, tanh, elu]}\n"
        "  init: {choice: [xavier, he]}\n"
        "  batch_norm: {choice: [true, false]}\n"
        "train:  # how long\n"
        "  epochs: 3\n"
        "search: {num_samples: 12, seed: 4}\n"
        "early_stopping: {grace_period: 1, reduction_factor: 2}\n"
    )
    (tmp_path / "mine.yaml").write_text(written)
    output = tmp_path / "fine.yaml"
    result = invoke(
        "refine",
        "report-me",
        "--tracking-uri",
        tracking_uri,
        "--top",
        "3",
        "--from",
        str(tmp_path / "mine.yaml"),
        "-o",
        str(output),
    )
    assert result.exit_code == 0, result.output
    assert (
        "setting" in result.stdout
        and "params.lr" in result.stdout
        and "search.seed" in result.stdout
    )  # the before-to-after table
    text = output.read_text()
    assert (
        text.startswith("# yaml-language-server: $schema=./sweep.schema.json\n# my coarse sweep\n")
        and "train:  # how long" in text
    )
    refined = load_sweep(output)
    assert refined.name == "report-me-refine-1" and refined.refines == outcome.parent_run_id
    assert refined.mlflow.experiment == "report-me"  # fine sweeps sit beside the coarse one
    assert refined.search.seed != 4 and refined.search.num_samples == 12  # new draws, not a replay
    changed = ("name:", "search:", "lr:", "activation:", "init:", "batch_norm:")
    assert all(
        line in text.splitlines()
        for line in written.splitlines()
        if not line.lstrip().startswith(changed)
    )
    # what the coarse sweep ran with
    assert "# the lecture's range" in text and refined.storage.path == str(folder / "results")
    assert invoke("validate", str(output)).exit_code == 0

    again = invoke("refine", "report-me", "--tracking-uri", tracking_uri, "-o", str(output))
    assert again.exit_code == 2 and "--force" in again.output and output.read_text() == text

    # The refined sweep's run is tagged with the run it refined.
    from sweeps.driver.running.launch import run_sweep

    overrides = [
        ("search.num_samples", 1),
        ("train.epochs", 1),
        ("early_stopping.grace_period", 1),
        ("mlflow.tracking_uri", tracking_uri),
    ]
    monkeypatch.chdir(tmp_path)
    again = run_sweep(load_sweep(output, overrides), echo=lambda line: None)
    assert (
        MlflowClient(tracking_uri).get_run(again.parent_run_id).data.tags["sweep.refined_from"]
        == outcome.parent_run_id
    )


@pytest.mark.slow
def test_importance_ranks_the_one_parameter_that_matters_first(
    tmp_path, tracking_uri, ray_connected
):
    from sweeps.driver.analysis.report import load_report
    from sweeps.driver.running.launch import run_sweep
    from sweeps.driver.tracking.queries import SweepReader

    config = validate_sweep(
        {
            "name": "only-lr",
            "model": {"arch": "mlp", "hidden": [32]},
            # weight decay of 1e-12 to 1e-11 changes nothing a float32 can tell: an inert parameter.
            "params": {
                "lr": {"log_uniform": [1.0e-4, 1.0]},
                "weight_decay": {"log_uniform": [1.0e-12, 1.0e-11]},
            },
            "train": {"epochs": 2},
            "search": {"num_samples": 12, "seed": 2},
            "early_stopping": {"scheduler": "none"},
            "diagnostics": {"enabled": False},
            "mlflow": {"tracking_uri": tracking_uri},
            "storage": {"path": str(tmp_path / "results")},
        },
        source="test",
    )
    run_sweep(config, echo=lambda line: None)
    report = load_report(SweepReader(tracking_uri), "only-lr")
    assert report.rung == 2 and len(report.at_rung()) == 12
    lr, inert = report.importance
    assert lr.param == "lr" and lr.matters and not inert.matters
    assert lr.mean > 5 * max(inert.mean, 0.0) + lr.std  # a clear margin


def synthetic_report(best_lrs: list[float], *, lr_matters: bool = True) -> SweepReport:
    """Trials already compared at epoch 2, best first, with lr's importance as given."""
    rows = [
        TrialRow(
            run_id=f"run{index}",
            name=f"t{index:02d}",
            status="completed",
            params={"lr": lr, "activation": "relu"},
            best=0.9 - index / 100,
            epochs=3,
            at_rung=0.8 - index / 100,
            rank_at_rung=index + 1,
        )
        for index, lr in enumerate(best_lrs)
    ]
    importance = [
        Importance("lr", 0.5, 0.1, 0.9 if lr_matters else 0.05),
        Importance("activation", 0.01, 0.02, 0.02),
    ]
    return SweepReport(
        parent_run_id="parent",
        name="s",
        metric="val_acc",
        mode="max",
        trials=rows,
        rung=2,
        importance=importance,
    )


def refined_params(sweep: dict, refined) -> dict:
    return {
        name: refined.changes.get(f"params.{name}", spec) for name, spec in sweep["params"].items()
    }


def test_refine_warns_and_widens_when_the_best_lr_is_at_the_edge():
    sweep = {
        "name": "s",
        "params": {
            "lr": {"log_uniform": [1.0e-4, 1.0]},
            "activation": {"choice": ["relu", "tanh"]},
        },
    }
    refined = refine_sweep(sweep, synthetic_report([1.2e-4, 3.0e-4, 5.0e-4]), k=3)
    assert len(refined.warnings) == 1 and "low edge" in refined.warnings[0]
    low, high = refined.changes["params.lr"]["log_uniform"]
    assert low < 1.0e-4  # widened below the old range
    assert 5.0e-4 <= high < 1.0  # narrowed above
    # tanh was never tried: no evidence against it
    assert "params.activation" not in refined.changes
    assert refined.changes["name"] == "s-refine-1" and refined.changes["refines"] == "parent"
    validate_sweep({**sweep, "params": refined_params(sweep, refined)}, source="refined")


def test_refine_in_the_middle_narrows_without_warning():
    sweep = {
        "name": "s-refine-1",
        "params": {"lr": {"log_uniform": [1.0e-4, 1.0]}, "momentum": {"uniform": [0.5, 0.99]}},
    }
    report = synthetic_report([1.0e-2, 2.0e-2])
    report.importance.append(Importance("momentum", 0.4, 0.1, 0.4))
    for row, momentum in zip(report.trials, (0.98, 0.9), strict=True):
        row.params["momentum"] = momentum
    refined = refine_sweep(sweep, report, k=2)
    assert refined.changes["name"] == "s-refine-2"
    low, high = refined.changes["params.lr"]["log_uniform"]
    assert 1.0e-4 < low <= 1.0e-2 and 2.0e-2 <= high < 1.0
    # momentum's best is at the high edge, but widening past 0.99 would leave [0, 1): the old bound
    # stays.
    assert refined.changes["params.momentum"]["uniform"][1] == 0.99
    assert any("momentum" in warning for warning in refined.warnings)


def test_refine_leaves_a_range_wide_when_its_parameter_does_not_matter_and_draws_with_a_new_seed():
    sweep = {"name": "s", "params": {"lr": {"log_uniform": [1.0e-4, 1.0]}}, "search": {"seed": 7}}
    refined = refine_sweep(sweep, synthetic_report([1.0e-2, 2.0e-2, 3.0e-2], lr_matters=False), k=3)
    assert "params.lr" not in refined.changes
    assert (
        "params.lr",
        "log_uniform [0.0001, 1]",
        "log_uniform [0.0001, 1]",
        "kept: no clear effect on the metric in the coarse sweep",
    ) in refined.table
    seed = refined.changes["search.seed"]
    assert (
        seed != 7
        and seed
        == refine_sweep(sweep, synthetic_report([1.0e-2], lr_matters=False), k=3).changes[
            "search.seed"
        ]
    )
    assert "search.seed" in format_changes(refined) and str(seed) in format_changes(refined)


def test_schema_accepts_the_default_sweep_and_rejects_a_bad_one():
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.output)
    jsonschema.validate(yaml.safe_load((REPO / "search.yaml").read_text()), schema)
    for bad in (
        {"name": "x", "params": {"lr": 0.1}, "trian": {}},
        {"name": "x", "params": {"lr": {"grid_search": [0.1, 0.01]}}},
        {"name": "x", "params": {"lr": 0.1}, "search": {"num_samples": 0}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_committed_schema_matches_the_code_and_sweep_files_point_at_it():
    assert json.loads((REPO / "sweep.schema.json").read_text()) == json_schema()
    assert (
        (REPO / "search.yaml")
        .read_text()
        .startswith("# yaml-language-server: $schema=./sweep.schema.json\n")
    )
