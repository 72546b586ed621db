"""A resumed trial whose recorded checkpoint is gone goes on from the newest one on storage.

Tune deletes a trial's checkpoints beyond `num_to_keep` as soon as a newer one is
saved, but writes its experiment snapshot, which names each trial's latest checkpoint,
a moment later and uploads it in the background. A driver killed in between leaves a
snapshot naming a checkpoint that no longer exists, and Tune's restore then fails the
trial ("does not exist on storage anymore"). The newer checkpoints that replaced it
are there, each with its epoch's metrics beside it (trainable.report_to_tune).

The newest on storage may be newer than anything the driver took in: a worker saves its
checkpoint before the driver processes that epoch's result, so a killed driver may never
have logged it. The trial goes on from the newest checkpoint whose epoch the driver did
take in (its line in the trial's result.json, written after the MLflow callback spooled
it), so every epoch after it is trained and logged again: no gap in the trial's record.
"""

from __future__ import annotations

import json
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
RESULT_FILE = "result.json"  # Tune's record of the results the driver processed, a line each


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
    """The trial's newest whole checkpoint in the folder that holds `checkpoint` whose epoch the
    driver processed (where one is; else the newest whole one, with a warning), or None.

    Whole: its weights and its metrics both arrived (a worker killed mid-upload leaves a
    part of a folder).
    """
    filesystem = checkpoint.filesystem
    assert filesystem is not None  # Tune gives every checkpoint one
    trial_folder = posixpath.dirname(checkpoint.path.rstrip("/"))
    whole = _whole_checkpoints(filesystem, trial_folder)
    processed = last_processed_epoch(filesystem, trial_folder)
    taken_in = [(epoch, found) for epoch, found in whole if epoch <= processed]
    if taken_in:
        return taken_in[0][1]
    if whole:
        logger.warning(
            "the driver processed no epoch of a checkpoint left in %s: resuming from epoch %d; "
            "the epochs before it that it did not log stay missing",
            trial_folder,
            whole[0][0],
        )
        return whole[0][1]
    return None


def last_processed_epoch(filesystem: pyarrow.fs.FileSystem, trial_folder: str) -> int:
    """The last epoch (training_iteration) in the trial's result.json; 0 where there is none. A
    line torn by a killed driver is no result it processed."""
    path = posixpath.join(trial_folder, RESULT_FILE)
    if not _exists(filesystem, path):
        return 0
    with filesystem.open_input_stream(path) as stream:
        text = stream.read().decode("utf-8", errors="replace")
    epochs = [0]
    for line in text.splitlines(keepends=True):
        try:
            epochs.append(int(json.loads(line)["training_iteration"]))
        except (ValueError, KeyError, TypeError):
            continue  # torn or foreign: not a result the driver took in
    return max(epochs)


def _whole_checkpoints(
    filesystem: pyarrow.fs.FileSystem, trial_folder: str
) -> list[tuple[int, tune.Checkpoint]]:
    """(epoch, checkpoint) of every whole checkpoint in the trial's folder, newest first."""
    entries = filesystem.get_file_info(pyarrow.fs.FileSelector(trial_folder, allow_not_found=True))
    folders = [
        entry
        for entry in entries
        if entry.type == pyarrow.fs.FileType.Directory
        and _checkpoint_index(entry.base_name) is not None
    ]
    found = []
    newest_first = sorted(folders, key=lambda entry: _checkpoint_index(entry.base_name) or 0)
    for folder in reversed(newest_first):
        candidate = tune.Checkpoint(folder.path, filesystem)
        if not _exists(filesystem, posixpath.join(folder.path, CHECKPOINT_FILE)):
            continue
        try:
            metrics = candidate.get_metadata()
        except ValueError:  # torn JSON
            continue
        if isinstance(metrics.get("epoch"), int):
            found.append((metrics["epoch"], candidate))
    return found


def _checkpoint_index(name: str) -> int | None:
    index = name.removeprefix(CHECKPOINT_PREFIX)
    return int(index) if name.startswith(CHECKPOINT_PREFIX) and index.isdigit() else None


def _exists(filesystem: pyarrow.fs.FileSystem, path: str) -> bool:
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound
