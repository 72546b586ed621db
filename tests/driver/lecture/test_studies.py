"""The lecture's studies without running them: claims stated up front, sweep files that exist,
the grid the comparison builds, the numbers read off a sweep, and the page that shows them."""

from __future__ import annotations

import math
import pickle

import pytest

from sweeps.driver.analysis.report import TrialRow
from sweeps.driver.lecture.html_report import RunFacts, write_report
from sweeps.driver.lecture.runner import STUDIES
from sweeps.driver.lecture.studies import (
    coarse_to_fine,
    initialization,
    learning_rate,
    random_vs_grid,
    transfer,
)
from sweeps.driver.lecture.study import (
    LECTURE_FILES,
    NOT_REPRODUCED,
    REPRODUCED,
    SKIPPED,
    Claim,
    Finding,
    Lecture,
    LogFile,
    judge,
)
from tests.conftest import REPO


def test_every_study_states_its_claim_and_rule_and_names_sweep_files_that_exist():
    keys = [study.CLAIM.key for study in STUDIES]
    assert len(keys) == len(set(keys)) == 8
    for study in STUDIES:
        claim = study.CLAIM
        assert claim.statement.endswith(".") and claim.criterion.endswith(".")
        assert claim.sweep_files and all(
            (LECTURE_FILES / name).is_file() for name in claim.sweep_files
        ), claim.sweep_files
    assert LECTURE_FILES == REPO / "examples" / "lecture"
    # Every lecture sweep file belongs to a study.
    named = {name for study in STUDIES for name in study.CLAIM.sweep_files}
    assert named == {path.name for path in LECTURE_FILES.glob("*.yaml")}


def test_a_claim_of_several_parts_is_reproduced_only_when_every_part_holds():
    assert judge({"a": True, "b": True}) == (REPRODUCED, "holds: a, b")
    assert judge({"a": True, "b": False, "c": False}) == (
        NOT_REPRODUCED,
        "holds: a; does not hold: b, c",
    )
    assert judge({"a": False}) == (NOT_REPRODUCED, "does not hold: a")


def test_the_grid_has_the_random_budget_and_tries_three_values_of_each_range():
    params = {
        "lr": {"log_uniform": [1.0e-4, 1.0]},
        "weight_decay": {"uniform": [0.0, 0.3]},
        "momentum": 0.9,
    }
    grid = random_vs_grid.grid_configs(params, 9)
    assert len(grid) == 9 and all(point["momentum"] == 0.9 for point in grid)
    # Cell centres on each range's own axis: log for log_uniform, linear for uniform.
    assert sorted({round(math.log10(point["lr"]), 6) for point in grid}) == pytest.approx(
        [-4 + 4 / 6, -2, -4 / 6]
    )
    assert sorted({point["weight_decay"] for point in grid}) == pytest.approx([0.05, 0.15, 0.25])
    with pytest.raises(ValueError, match="square grid"):
        random_vs_grid.grid_configs(params, 8)


def test_the_initialization_rules_read_the_spread_layer_by_layer():
    halving = [2 ** (-layer / 2) for layer in range(10)]  # the variance halves at each layer
    assert initialization.variance_ratio(halving) == pytest.approx(0.5)
    assert initialization.last_over_first(halving) == pytest.approx(2**-4.5)


def row(lr: float, best: float, alerts: str = "", **params) -> TrialRow:
    return TrialRow(
        run_id=f"run-{lr}",
        name="t",
        status="completed",
        params={"lr": lr, **params},
        best=best,
        epochs=1,
        alerts=alerts,
    )


def test_alert_directions_come_from_the_trials_alert_tag():
    flagged = row(
        1.0, 0.1, "too_high: layers.0.weight 3.1e-02 at step 120; nonfinite: loss nan at step 140"
    )
    assert learning_rate.alert_directions(flagged) == {"too_high", "nonfinite"}
    assert learning_rate.alert_directions(row(0.01, 0.9)) == set()


def test_coarse_to_fine_distance_is_in_the_coarse_ranges_log_scale():
    ranges = {"lr": [1.0e-5, 1.0], "weight_decay": [1.0e-6, 1.0e-1]}
    best = row(1.0e-3, 0.9, weight_decay=1.0e-4)
    assert coarse_to_fine.distance(row(1.0e-3, 0.5, weight_decay=1.0e-4), best, ranges) == 0
    assert coarse_to_fine.distance(
        row(1.0e-2, 0.5, weight_decay=1.0e-4), best, ranges
    ) == pytest.approx(1 / 5)


def test_the_command_that_reproduces_a_study_spells_the_overrides_as_set_options(tmp_path):
    lecture = Lecture(
        out_dir=tmp_path,
        tracking_uri="sqlite:///x.db",
        quick=True,
        echo=print,
        sweep_log=LogFile(tmp_path / "log"),
    )
    assert lecture.overrides({"train.epochs": 2}) == {"train.epochs": 2}
    command = lecture.command(
        "batch_norm.yaml",
        {"search.num_samples": 20, "model.hidden": [64, 64], "params.batch_norm": True},
    )
    assert (
        command == "sweep run examples/lecture/batch_norm.yaml --set search.num_samples=20 --set "
        "'model.hidden=[64,64]' --set params.batch_norm=true"
    )  # quoted for the shell
    # Its results stay in the report's folder.
    assert lecture.load("batch_norm.yaml", {}).storage.path == str(tmp_path / "sweep-results")


def test_the_sweep_log_survives_ray_tunes_pickling(tmp_path):
    # Tune pickles a sweep's callbacks, and the progress printer's echo with them.
    log = pickle.loads(pickle.dumps(LogFile(tmp_path / "lecture.log")))
    log("one")
    log("two")
    assert (tmp_path / "lecture.log").read_text() == "one\ntwo\n"


def test_the_page_shows_each_claim_its_rule_figures_numbers_and_verdict(tmp_path):
    claim = Claim(
        key="k",
        title="1. A <claim>",
        statement="Things hold.",
        criterion="x > 1 & y < 2.",
        sweep_files=("a.yaml",),
    )
    findings = [
        Finding(
            claim=claim,
            verdict=REPRODUCED,
            why="x = 3",
            numbers=[("x", "3")],
            figures=["k.png"],
            commands=["sweep run examples/lecture/a.yaml"],
        ),
        Finding(
            claim=Claim("m", "2. Other", "No.", "z.", ("b.yaml",)),
            verdict=NOT_REPRODUCED,
            why="z = 0",
        ),
    ]
    facts = RunFacts(
        quick=True,
        seconds=90,
        tracking_uri="sqlite:///m.db",
        lecture_run_id="abc",
        machine="here",
        started="now",
    )
    page = write_report(findings, tmp_path, facts).read_text()
    # nothing fetched from elsewhere
    assert page.startswith("<!doctype html>") and "http" not in page.split("<body>")[0]
    assert "1. A &lt;claim&gt;" in page and "x &gt; 1 &amp; y &lt; 2." in page
    assert "<img src='k.png'" in page and "examples/lecture/a.yaml" in page
    # each badge in the summary table and at its section
    assert page.count("reproduced</span>") == 2 * 2
    assert "not reproduced" in page and "z = 0" in page


def test_without_fashion_mnist_the_transfer_study_says_so_and_is_skipped_not_faked(tmp_path):
    files = tmp_path / "lecture"
    files.mkdir()
    pretrain = (LECTURE_FILES / transfer.PRETRAIN_FILE).read_text()
    (files / transfer.PRETRAIN_FILE).write_text(
        pretrain.replace("/usr/share/datasets/fashion-mnist", str(tmp_path / "nothing-here"))
    )
    lecture = Lecture(
        out_dir=tmp_path,
        tracking_uri="sqlite:///x.db",
        quick=True,
        echo=print,
        sweep_log=LogFile(tmp_path / "log"),
        files=files,
    )
    finding = transfer.run(lecture)
    assert finding.verdict == SKIPPED and "apt-get install dataset-fashion-mnist" in finding.why
    assert finding.figures == [] and finding.sweep_runs == {}


def test_the_study_keys_sweep_lecture_offers_are_the_studies_in_order():
    from sweeps.driver.lecture import STUDY_KEYS
    from sweeps.driver.lecture.runner import STUDIES

    assert STUDY_KEYS == tuple(study.CLAIM.key for study in STUDIES)
