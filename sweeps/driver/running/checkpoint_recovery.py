"""A resumed trial whose recorded checkpoint is gone goes on from the newest one on storage.

Tune deletes a trial's checkpoints beyond `num_to_keep` as soon as a newer one is
saved, but writes its experiment snapshot, which names each trial's latest checkpoint,
a moment later and uploads it in the background. A driver killed in between leaves a
snapshot naming a checkpoint that no longer exists, and Tune's restore then fails the
trial ("does not exist on storage anymore"). The newer checkpoints that replaced it
are there, each with its epoch's metrics beside it (trainable.report_to_tune).
"""

from __future__ import annotations

import logging
import posixpath
from typing import TYPE_CHECKING, Any

import pyarrow.fs
from ray import tune

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

from sweeps.driver.cluster import ray_cluster
from sweeps.trial.trainable import CHECKPOINT_FILE

logger = logging.getLogger(__name__)
CHECKPOINT_PREFIX = "checkpoint_"  # Tune's name for a trial's checkpoint folders: checkpoint_000012


class ResumeFromNewestCheckpoint(tune.Callback):
    """Before Tune restores a trial, repair a recorded checkpoint that has vanished."""

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        # Tune reads the trial's latest checkpoint right after this hook, to restore it.
        recorded = ray_cluster.recorded_checkpoint(trial)
        if recorded is None or _exists(recorded.filesystem, recorded.path):
            return
        newest = newest_checkpoint_beside(recorded)
        if newest is None:
            return  # nothing to go on from: Tune says which checkpoint is missing
        filesystem = recorded.filesystem
        assert filesystem is not None  # Tune gives every checkpoint one
        # Copied to the recorded name rather than Tune pointed at the newer folder: Tune numbers
        # the trial's next checkpoints on from the recorded one, so it would save into the
        # newer folders again and, keeping two, later delete the one it restored from.
        try:
            filesystem.create_dir(recorded.path, recursive=True)
            pyarrow.fs.copy_files(
                newest.path,
                recorded.path,
                source_filesystem=filesystem,
                destination_filesystem=filesystem,
            )
        except OSError as error:
            # Not the sweep's end: Tune fails this one trial, saying which checkpoint is missing.
            logger.warning(
                "could not copy %s to %s, where Tune expects the trial's checkpoint: %s",
                newest.path,
                recorded.path,
                error,
            )
            return
        ray_cluster.restore_from_epoch(trial, newest.get_metadata())


def newest_checkpoint_beside(checkpoint: tune.Checkpoint) -> tune.Checkpoint | None:
    """The trial's newest whole checkpoint in the folder that holds `checkpoint`, or None.

    Whole: its weights and its metrics both arrived (a worker killed mid-upload leaves a
    part of a folder).
    """
    filesystem = checkpoint.filesystem
    assert filesystem is not None  # Tune gives every checkpoint one
    trial_folder = posixpath.dirname(checkpoint.path.rstrip("/"))
    entries = filesystem.get_file_info(pyarrow.fs.FileSelector(trial_folder, allow_not_found=True))
    folders = [
        entry
        for entry in entries
        if entry.type == pyarrow.fs.FileType.Directory
        and _checkpoint_index(entry.base_name) is not None
    ]
    for folder in sorted(
        folders, key=lambda entry: _checkpoint_index(entry.base_name) or 0, reverse=True
    ):
        candidate = tune.Checkpoint(folder.path, filesystem)
        if not _exists(filesystem, posixpath.join(folder.path, CHECKPOINT_FILE)):
            continue
        try:
            metrics = candidate.get_metadata()
        except ValueError:  # torn JSON
            continue
        if isinstance(metrics.get("epoch"), int):
            return candidate
    return None


def _checkpoint_index(name: str) -> int | None:
    index = name.removeprefix(CHECKPOINT_PREFIX)
    return int(index) if name.startswith(CHECKPOINT_PREFIX) and index.isdigit() else None


def _exists(filesystem: pyarrow.fs.FileSystem, path: str) -> bool:
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound
