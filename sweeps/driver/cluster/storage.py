"""Where a sweep keeps its files: Ray Tune's storage path (a local folder, a shared
filesystem or an object-store URI), checked before anything is written, and the
whole-or-nothing file access the journal and the spool use there."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from sweeps.errors import SweepError

if TYPE_CHECKING:
    import pyarrow.fs

# Filesystems that other machines can mount too (from /proc/mounts' type column).
NETWORK_FILESYSTEMS = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "lustre",
    "glusterfs",
    "ceph",
    "gpfs",
    "beegfs",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.juicefs",
)


# Filesystems pyarrow (and so Ray Tune) opens by URI; those after "file" reach a network.
URI_SCHEMES = ("file", "local", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
NAME_MAX = 255  # bytes in one path component on Linux filesystems


class StorageError(SweepError):
    """A storage path a sweep cannot use; the message names the field."""


def is_uri(path: str) -> bool:
    return "://" in path


def storage_path_problem(path: str) -> str | None:
    """Why `path` cannot be a storage path at all (an unknown URI scheme, an over-long name), or
    None."""
    if is_uri(path):
        scheme = path.split("://", 1)[0].lower()
        if scheme not in URI_SCHEMES:
            return (
                f"cannot open {scheme}:// paths; use a local path or one of "
                f"{', '.join(s + '://' for s in URI_SCHEMES)}"
            )
        return None
    too_long = next((part for part in Path(path).parts if len(part.encode()) > NAME_MAX), None)
    if too_long is not None:
        return (
            f"a folder name in it is {len(too_long.encode())} bytes long, more than the "
            f"{NAME_MAX} a filesystem takes"
        )
    return None


def resolve_storage_path(path: str) -> str:
    """A local path made absolute (`sweep resume` may run from another folder); a URI as it is."""
    return path if is_uri(path) else str(Path(path).expanduser().resolve())


def join(base: str, *parts: str) -> str:
    # Not PurePosixPath: it would fold a URI's "s3://" into "s3:/".
    return "/".join([base.rstrip("/"), *parts])


def filesystem(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    import pyarrow.fs

    if is_uri(path):
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), str(path)


def read_text(path: str) -> str | None:
    """The file's text, or None where there is no such file."""
    fs, fs_path = filesystem(path)
    try:
        with fs.open_input_stream(fs_path) as stream:
            return stream.read().decode("utf-8")
    except FileNotFoundError:
        return None


def exists(path: str) -> bool:
    import pyarrow.fs

    fs, fs_path = filesystem(path)
    return fs.get_file_info(fs_path).type != pyarrow.fs.FileType.NotFound


def read_bytes(path: str) -> bytes:
    fs, fs_path = filesystem(path)
    with fs.open_input_stream(fs_path) as stream:
        return stream.read()


def write_text(path: str, text: str) -> None:
    """Write whole or not at all: a driver killed mid-write leaves the previous version."""
    fs, fs_path = filesystem(path)
    fs.create_dir(str(PurePosixPath(fs_path).parent), recursive=True)
    partial = f"{fs_path}.partial"
    with fs.open_output_stream(partial) as stream:
        stream.write(text.encode("utf-8"))
    fs.move(partial, fs_path)


def write_bytes(path: str, content: bytes) -> None:
    fs, fs_path = filesystem(path)
    fs.create_dir(str(PurePosixPath(fs_path).parent), recursive=True)
    with fs.open_output_stream(fs_path) as stream:
        stream.write(content)


def remove_folder_of(path: str) -> None:
    """Delete the folder that holds `path`, if it is still there."""
    fs, fs_path = filesystem(path)
    try:
        fs.delete_dir(str(PurePosixPath(fs_path).parent))
    except (FileNotFoundError, OSError):
        pass


def subfolders(path: str) -> list[str]:
    """The folders directly under `path` (none if it does not exist)."""
    import pyarrow.fs

    fs, fs_path = filesystem(path)
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(fs_path, allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        join(path, entry.base_name)
        for entry in entries
        if entry.type == pyarrow.fs.FileType.Directory
    ]


def new_experiment_folder(storage_path: str, name: str) -> str:
    """A new experiment folder `name` under storage_path, made now so no other sweep takes it
    (two started in the same second get `name-2`); on an object store, just its path."""
    if is_uri(storage_path):
        return join(storage_path, name)
    Path(storage_path).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 100):
        folder = Path(storage_path) / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return str(folder)
    raise StorageError(f"storage.path: {storage_path} already holds 99 sweeps named {name}")


def remove_empty_folder(path: str) -> None:
    """Remove a folder this sweep made, if nothing was put in it but the sweep's lock."""
    if is_uri(path):
        return
    folder = Path(path)
    with contextlib.suppress(OSError):
        for leftover in folder.iterdir():
            if leftover.name != "sweep.lock":
                return
        (folder / "sweep.lock").unlink(missing_ok=True)
        folder.rmdir()


def check_storage_writable(storage_path: str) -> None:
    """storage.path must take files (checkpoints, the journal) before any trial starts."""
    if is_uri(storage_path):
        # object stores answer with their own errors; credentials may only exist on the nodes
        return
    # Try the nearest folder that exists: creating the path itself would leave it
    # behind when a later check refuses the sweep. (os.access says yes to root.)
    existing = next(
        parent for parent in (Path(storage_path), *Path(storage_path).parents) if parent.exists()
    )
    if not existing.is_dir():
        raise StorageError(f"storage.path: cannot write to {storage_path}: {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise StorageError(
            f"storage.path: cannot write to {storage_path}: {error.strerror or error}"
        ) from None


def check_storage_reaches_every_node(path: str, *, shared: bool, nodes: int) -> None:
    """Refuse a node-local storage path on a multi-node cluster, before any trial starts:
    trials on the other nodes would write their checkpoints where no one can read them."""
    if (
        nodes < 2
        or is_uri(path)
        or shared
        or on_network_filesystem(Path(path).expanduser().resolve())
    ):
        return
    raise StorageError(
        f"storage.path: {path} is on this machine's own disk, but the Ray cluster has {nodes} "
        "nodes; "
        "use a URI (s3://..., gs://...) or a filesystem every node mounts, and set "
        "storage.shared: true for the latter"
    )


def on_network_filesystem(path: Path) -> bool:
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return False
    candidates = [
        (mount, fstype)
        for mount, fstype in mounts
        if path == Path(mount) or Path(mount) in path.parents
    ]
    if not candidates:
        return False
    _, fstype = max(candidates, key=lambda item: len(item[0]))
    return fstype in NETWORK_FILESYSTEMS
