"""However a sweep ends after its parent run exists, the run is closed: FAILED with the reason, or
KILLED as interrupted."""

from __future__ import annotations

import signal

import pytest
from mlflow.tracking import MlflowClient

from sweeps.driver.record.journal import SweepJournal
from sweeps.driver.running import closing
from sweeps.driver.running.interruption import SweepInterrupted
from sweeps.driver.tracking.sweep_run import open_sweep_run


def opened_sweep(tmp_path, tracking_uri) -> SweepJournal:
    experiment_id, run_id = open_sweep_run(
        tracking_uri,
        experiment_name="closing",
        run_name="closing-1",
        sweep_yaml="name: closing\n",
        params={},
    )
    journal = SweepJournal(
        experiment_path=str(tmp_path / "experiment"),
        sweep_name="closing",
        tracking_uri=tracking_uri,
        experiment_id=experiment_id,
        parent_run_id=run_id,
        sweep_yaml="name: closing\n",
    )
    journal.save()
    return journal


def test_a_failure_after_the_parent_run_exists_marks_it_failed_with_the_reason(
    tmp_path, tracking_uri
):
    journal = opened_sweep(tmp_path, tracking_uri)
    with pytest.raises(RuntimeError):
        with closing.on_failure(journal, echo=print, patience_s=0):
            raise RuntimeError("the storage went away\nand a second line")
    run = MlflowClient(tracking_uri).get_run(journal.parent_run_id)
    assert run.info.status == "FAILED"
    assert (
        run.data.tags["sweep.state"] == "failed"
        and run.data.tags["sweep.failure"] == "the storage went away"
    )


def test_a_signal_before_training_marks_it_killed_and_leaves_nothing_to_resume(
    tmp_path, tracking_uri
):
    journal = opened_sweep(tmp_path, tracking_uri)
    with pytest.raises(SweepInterrupted):
        with closing.on_failure(journal, echo=print, patience_s=0):
            raise SweepInterrupted(signal.SIGTERM)
    run = MlflowClient(tracking_uri).get_run(journal.parent_run_id)
    assert run.info.status == "KILLED" and run.data.tags["sweep.state"] == "interrupted"
    assert run.data.tags["sweep.stop_reason"] == "interrupted by SIGTERM"
    assert SweepJournal.load(journal.experiment_path).finished  # no Tune experiment to go on from
