"""Durable, all-or-nothing writes on a pyarrow file system.

Locally a file is written under `tmp/`, fsynced, renamed into place and its
directory fsynced: after a crash it is either absent or complete. On S3 a single
PUT already has that property, so the object is written at its final key."""

from __future__ import annotations

import contextlib
import os

import pyarrow.fs as pafs

from catalog.errors import CairnError

from .layout import temp_path
from .oserrors import reading, writing
from .targets import Target
from .transfer import CHUNK_SIZE


def fsync_path(path: str) -> None:
    """fsync a local file or directory by path (pyarrow streams do not expose fsync)."""
    # A link is never synced through, and a FIFO put in a file's place is not waited on.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(target: Target, path: str) -> None:
    """Create a directory (and parents). S3 has no directories, and creating one
    would only leave an empty marker key behind, so it is skipped there."""
    if target.fs.type_name != "s3":
        target.fs.create_dir(path, recursive=True)


def delete_quietly(target: Target, path: str) -> None:
    """Best-effort removal used on failure paths, where the first error matters more."""
    with contextlib.suppress(OSError):
        target.fs.delete_file(path)


def publish(target: Target, tmp: str, final: str, durable: bool = True,
            file_synced: bool = False) -> None:
    """Rename a finished local temp file into place, fsyncing file (unless the
    writer did: `file_synced`) and directory."""
    parent = final.rsplit("/", 1)[0]
    if durable and not file_synced:
        fsync_path(tmp)
    make_dirs(target, parent)
    target.fs.move(tmp, final)
    if durable:
        fsync_path(parent)


def write_atomic(target: Target, path: str, data: bytes, durable: bool = True) -> None:
    """Write small `data` at `path` so readers see the old state or the whole new one."""
    with writing(target.uri):
        if target.kind != "local":
            make_dirs(target, path.rsplit("/", 1)[0])
            with target.fs.open_output_stream(path) as out:
                out.write(data)
            return
        tmp = temp_path(target.base)
        make_dirs(target, tmp.rsplit("/", 1)[0])
        try:
            with target.fs.open_output_stream(tmp) as out:
                out.write(data)
            publish(target, tmp, path, durable)
        except BaseException:
            delete_quietly(target, tmp)
            raise


def read_small(target: Target, path: str) -> bytes | None:
    """A whole small file (config, manifest, lock, key, marker), or None if it is
    absent. Read in chunks: on S3 an unsized read() is very slow.

    On object storage another server may replace (a lock it extends) or remove
    (a finished prune's marker, a dropped manifest) the file between the HEAD
    and the GET that read it; the GET then fails with an error that is not
    "not found". So a failed read there looks again: gone is None, still
    there is read once more, and only a file that cannot be read while it
    stays put is an error."""
    for attempt in range(_READ_ATTEMPTS):
        try:
            return _read_whole(target, path)
        except CairnError as exc:
            if isinstance(exc.__cause__, (FileNotFoundError, NotADirectoryError)):
                return None
            if target.kind != "s3" or attempt == _READ_ATTEMPTS - 1:
                raise
            with reading(target.uri, path.rsplit("/", 1)[-1]):
                if target.fs.get_file_info(path).type == pafs.FileType.NotFound:
                    return None
    raise AssertionError("unreachable")


_READ_ATTEMPTS = 3


def _read_whole(target: Target, path: str) -> bytes:
    with (
        reading(target.uri, path.rsplit("/", 1)[-1]),
        target.fs.open_input_stream(path) as f,
    ):
        parts: list[bytes] = []
        while True:
            part = f.read(CHUNK_SIZE)
            if not part:
                return b"".join(parts)
            parts.append(bytes(part))


def exists(target: Target, path: str) -> bool:
    return bool(target.fs.get_file_info(path).type == pafs.FileType.File)
