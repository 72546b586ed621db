"""Finding the checkpoint a resumed trial goes on from when Tune's recorded one is gone."""

from __future__ import annotations

import json
from pathlib import Path

from ray import tune

from sweeps.driver.running.checkpoint_recovery import newest_checkpoint_beside
from sweeps.trial.trainable import CHECKPOINT_FILE


def save_checkpoint(
    trial_folder: Path, index: int, *, epoch: int, weights: bool = True, metadata: str | None = None
) -> Path:
    folder = trial_folder / f"checkpoint_{index:06d}"
    folder.mkdir(parents=True)
    if weights:
        (folder / CHECKPOINT_FILE).write_bytes(b"weights")
    (folder / ".metadata.json").write_text(
        metadata if metadata is not None else json.dumps({"epoch": epoch, "val_acc": 0.9})
    )
    return folder


def test_the_newest_whole_checkpoint_is_found_and_torn_ones_are_passed_over(tmp_path):
    recorded = tune.Checkpoint(str(tmp_path / "checkpoint_000004"))  # deleted by Tune
    save_checkpoint(tmp_path, 5, epoch=5)
    newest_whole = save_checkpoint(tmp_path, 9, epoch=9)
    save_checkpoint(tmp_path, 10, epoch=10, weights=False)  # its upload was cut short
    save_checkpoint(tmp_path, 11, epoch=11, metadata='{"epoch": 1')  # so was this one's
    (tmp_path / "checkpoint_tmp_abc").mkdir()  # not one of Tune's numbered folders
    found = newest_checkpoint_beside(recorded)
    assert found is not None and Path(found.path) == newest_whole
    assert found.get_metadata()["epoch"] == 9


def test_nothing_is_found_where_no_whole_checkpoint_is_left(tmp_path):
    save_checkpoint(tmp_path, 2, epoch=2, weights=False)
    assert newest_checkpoint_beside(tune.Checkpoint(str(tmp_path / "checkpoint_000001"))) is None
    assert (
        newest_checkpoint_beside(tune.Checkpoint(str(tmp_path / "gone" / "checkpoint_000001")))
        is None
    )


def test_a_checkpoint_newer_than_any_result_the_driver_processed_is_passed_over(tmp_path):
    # The worker saved epoch 4's checkpoint, but the driver was killed before it took in (and
    # logged) epoch 4: going on from it would leave epoch 4 out of the trial's record.
    recorded = tune.Checkpoint(str(tmp_path / "checkpoint_000002"))  # deleted by Tune
    processed = save_checkpoint(tmp_path, 3, epoch=3)
    save_checkpoint(tmp_path, 4, epoch=4)
    results = [json.dumps({"training_iteration": epoch, "val_acc": 0.5}) for epoch in (1, 2, 3)]
    (tmp_path / "result.json").write_text("\n".join(results) + '\n{"training_iteration": 4, "va')
    found = newest_checkpoint_beside(recorded)
    assert found is not None and Path(found.path) == processed


def test_without_a_record_of_results_the_newest_whole_checkpoint_is_taken(tmp_path):
    save_checkpoint(tmp_path, 3, epoch=3)
    newest = save_checkpoint(tmp_path, 4, epoch=4)
    found = newest_checkpoint_beside(tune.Checkpoint(str(tmp_path / "checkpoint_000002")))
    assert found is not None and Path(found.path) == newest
