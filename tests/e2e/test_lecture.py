"""`sweep lecture --quick` through the real CLI: each study is a test of the lecture's science.

Every verdict is checked, with the rules the studies state (sweeps/driver/lecture/). A claim
that does not reproduce on this data is expected as such here and explained in the README's
"What the lecture says, shown"; a change that flips any verdict fails this test.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from sweeps.driver.lecture.runner import STUDIES
from tests.conftest import run_sweep_cli
from tests.trial.test_data import FASHION_MNIST

# What --quick found on the 2-core machine (2026-11-30); the trials are seeded and no study uses
# ASHA, so a rerun trains the same trials. The README says why the two "not reproduced" are.
EXPECTED = {
    "initialization": "reproduced",
    # tanh reaches 90% in 1 epoch, ReLU in 3; the sigmoid net never learns, unsaturated
    "activations": "not reproduced",
    "batch_norm": "reproduced",
    "random_vs_grid": "reproduced",  # random's best better in 6 of 6 seeds
    "learning_rate": "reproduced",
    "sanity": "reproduced",
    # 0.862 fine-tuned against 0.828 from scratch (17 of 500 validation images), 2026-12-06
    "transfer": "reproduced" if FASHION_MNIST.is_dir() else "skipped",
    # the weight decay, which barely matters, stays spread: 0.295 against 0.375, not half
    "coarse_to_fine": "not reproduced",
}


def assert_a_real_figure(path: Path) -> None:
    """A PNG a person can read: big enough, and more than a blank canvas."""
    assert path.stat().st_size > 10_000, path
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= 500 and image.height >= 300, (
            path,
            image.size,
        )
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 50, path  # None: more colours than counted


@pytest.mark.slow
def test_the_quick_lecture_reaches_every_verdict_and_writes_its_report(tmp_path, tracking_uri):
    report = tmp_path / "report"
    result = run_sweep_cli(
        "lecture",
        "--quick",
        "-o",
        str(report),
        "--tracking-uri",
        tracking_uri,
        cwd=tmp_path,
        timeout=2400,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    verdicts = json.loads((report / "verdicts.json").read_text())
    assert verdicts["quick"] is True
    found = {key: claim["verdict"] for key, claim in verdicts["claims"].items()}
    assert found == EXPECTED, {key: claim["why"] for key, claim in verdicts["claims"].items()}
    assert result.returncode == 0, result.stdout[
        -2000:
    ]  # a claim not reproduced is a finding, not an error

    page = (report / "index.html").read_text()
    for study in STUDIES:
        claim = verdicts["claims"][study.CLAIM.key]
        assert (
            html.escape(study.CLAIM.criterion) in page
            and html.escape(study.CLAIM.statement) in page
        )
        assert all(f"examples/lecture/{name}" in page for name in study.CLAIM.sweep_files)
        assert claim["figures"] or claim["verdict"] == "skipped", study.CLAIM.key
    shown = re.findall(r"<img src='([^']+)'", page)
    assert sorted(shown) == sorted(
        name for claim in verdicts["claims"].values() for name in claim["figures"]
    )
    for name in shown:
        assert_a_real_figure(report / name)

    client = MlflowClient(tracking_uri)
    run = client.get_run(verdicts["lecture_run_id"])
    assert (
        client.get_experiment(run.info.experiment_id).name == "lecture"
        and run.info.status == "FINISHED"
    )
    assert {
        key.removeprefix("lecture.verdict."): value
        for key, value in run.data.tags.items()
        if key.startswith("lecture.verdict.")
    } == found
    logged = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "report")}
    assert {f"report/{name}" for name in ["index.html", "verdicts.json", *shown]} <= logged
    # The sweeps are ordinary sweeps: a parent run each, with its trials nested under it.
    for claim in verdicts["claims"].values():
        for parent_id in claim["sweep_runs"].values():
            parent = client.get_run(parent_id)
            assert parent.data.tags["sweep.role"] == "parent" and parent.info.status == "FINISHED"
            trials = client.search_runs(
                [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'"
            )
            assert len(trials) == int(parent.data.params["search.num_samples"])
