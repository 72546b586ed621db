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
