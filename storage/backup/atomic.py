"""Durable, all-or-nothing writes on a pyarrow file system.

Locally a file is written under `tmp/`, fsynced, renamed into place and its
directory fsynced: after a crash it is either absent or complete. On S3 a single
PUT already has that property, so the object is written at its final key."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable

import pyarrow.fs as pafs

from catalog.errors import BackupInvalid, CairnError, InvalidArgument, Unavailable

from .layout import TMP, temp_path
from .nofollow import handler_of
from .oserrors import describe, reading, writing
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
    try:
        if durable and not file_synced:
            fsync_path(tmp)
        make_dirs(target, parent)
        target.fs.move(tmp, final)
    except FileNotFoundError as exc:
        if target.fs.get_file_info(tmp).type == pafs.FileType.NotFound:
            raise vanished(target, tmp, exc) from exc
        raise
    if durable:
        fsync_path(parent)


# A file system without hard links (or refusing them) gets publish's rename.
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})


def publish_new(target: Target, tmp: str, final: str, durable: bool, file_synced: bool,
                keep: Callable[[], bool]) -> bool:
    """`publish`, telling whether this call stored `final`: False (and `tmp`
    removed) when `final` exists meanwhile and `keep()` says it holds the
    content (another server stored it a moment earlier), so that two writers
    racing do not both count its bytes as theirs (`bytes_written`). Locally a
    hard link, which fails where a file is, then the temp name's removal; a
    rename where hard links are not to be had, and over a `final` that `keep`
    refuses (a damaged object is replaced). S3 has no conditional copy in
    pyarrow: there the check before the copy is all (docs/backup-format.md)."""
    handler = handler_of(target.fs)
    if handler is None:
        publish(target, tmp, final, durable, file_synced)
        return True
    parent = final.rsplit("/", 1)[0]
    try:
        if durable and not file_synced:
            fsync_path(tmp)
        make_dirs(target, parent)
        linked: bool | None = handler.link_new(tmp, final)
    except FileNotFoundError as exc:
        if target.fs.get_file_info(tmp).type == pafs.FileType.NotFound:
            raise vanished(target, tmp, exc) from exc
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        linked = None
    if linked is False and keep():
        delete_quietly(target, tmp)
        return False
    if linked is None or linked is False:
        publish(target, tmp, final, durable, file_synced=True)
        return True
    delete_quietly(target, tmp)
    if durable:
        fsync_path(parent)
    return True


def vanished(target: Target, tmp: str, exc: OSError) -> CairnError:
    """A temp file removed under a write (another server's clean-up of a shared
    target, or a person's): not the target missing, which ENOENT alone reads as."""
    return Unavailable(
        f"a file being written to backup target '{target.uri}' "
        f"('{TMP}/{tmp.rsplit('/', 1)[-1]}') was removed before it was complete, by another "
        f"server's or someone's clean-up of '{TMP}/': {describe(exc)}; nothing of it was "
        "published, try again"
    )


# The most a small file (config, manifest, lock, key, prune marker) may hold:
# what a reader takes into memory. A target is hostile input, and a sparse
# file of many GiB costs its maker no disk; a manifest of 64 MiB lists some
# 200,000 files, a lock as many objects.
SMALL_MAX = 64 << 20


class TooLarge(BackupInvalid):
    """A small file over SMALL_MAX: refused at once, not read again."""


def write_small(target: Target, path: str, data: bytes, durable: bool = True,
                limit: int = SMALL_MAX, check: bool = False) -> None:
    """write_atomic for a file read back with read_small: one over the limit
    is refused here, so nothing is written that could not be read back.
    `check` (a file of a name no other writer uses: a manifest, a key file):
    on object storage it is read back and must be the bytes written
    (`held_as_written`), and one that is not is removed again."""
    if len(data) > limit:
        name = path.rsplit("/", 1)[-1]
        raise InvalidArgument(
            f"'{name}' would be {len(data)} bytes, over the {limit} a backup target's "
            "manifests, locks and keys may hold (split the backup: fewer files per backup)"
        )
    write_atomic(target, path, data, durable)
    if check and target.kind != "local":
        try:
            held_as_written(target, path, data, read_small(target, path, limit))
        except Unavailable:
            delete_quietly(target, path)
            raise


def write_atomic(target: Target, path: str, data: bytes, durable: bool = True) -> None:
    """Write small `data` at `path` so readers see the old state or the whole new one."""
    with writing(target.uri):
        if target.kind != "local":
            make_dirs(target, path.rsplit("/", 1)[0])
            with target.fs.open_output_stream(path) as out:
                out.write(data)
            return
        tmp = temp_path(target.base, target.writer)
        make_dirs(target, tmp.rsplit("/", 1)[0])
        try:
            with target.fs.open_output_stream(tmp) as out:
                out.write(data)
            publish(target, tmp, path, durable)
        except BaseException:
            delete_quietly(target, tmp)
            raise


def held_as_written(target: Target, path: str, data: bytes, back: bytes | None) -> None:
    """Unavailable unless `back`, the file at `path` read back (None: absent),
    is `data`: object storage has been seen to answer 200 to a write it did not
    store, or stored cut short or changed, and a BACKUP so reported completed
    was not in its target (docs/backup-format.md, "Read back")."""
    if back != data:
        raise not_held(target, path, len(data), None if back is None else len(back))


def size_held(target: Target, path: str, size: int) -> None:
    """`held_as_written` for a file too large to read back (an archived
    segment, once a second): its size, one HEAD, and on object storage its
    last byte (`_last_byte`). A changed byte is left to
    the segment's own checksum (VERIFY ARCHIVE, RESTORE)."""
    with reading(target.uri, path.rsplit("/", 1)[-1]):
        info = target.fs.get_file_info(path)
    held = info.size if info.type == pafs.FileType.File else None
    if held == size and size > 0 and target.kind == "s3" and not _last_byte(target, path, size):
        held = None  # a HEAD answering for a write the store dropped (a cache in front)
    if held != size:
        raise not_held(target, path, size, held)


def _last_byte(target: Target, path: str, size: int) -> bool:
    """Whether the store serves the last byte of a file a HEAD said holds `size`
    bytes: a write acknowledged and dropped, then a HEAD answering with its
    size, had an archived segment taken for shipped, its changes trimmed from
    the log (one ranged GET; the HEAD pyarrow makes first answered already)."""
    try:
        with target.fs.open_input_file(path) as f:
            return len(f.read_at(1, size - 1)) == 1
    except OSError:
        return False


def not_held(target: Target, path: str, written: int, held: int | None) -> Unavailable:
    name = "/".join(path.rsplit("/", 2)[-2:])
    how = ("it is not there" if held is None
           else f"it holds {held} bytes that are not the {written} written")
    return Unavailable(f"backup target '{target.uri}' acknowledged '{name}' but does not hold "
                       f"it as written ({how}): try again")


def read_small(target: Target, path: str, limit: int = SMALL_MAX) -> bytes | None:
    """A whole small file (config, manifest, lock, key, marker), or None if it is
    absent. Read in chunks: on S3 an unsized read() is very slow. Past `limit`
    bytes the read stops: TooLarge (BACKUP_INVALID).

    On object storage another server may replace (a lock it extends) or remove
    (a finished prune's marker, a dropped manifest) the file between the HEAD
    and the GET that read it; the GET then fails with an error that is not
    "not found". So a failed read there looks again: gone is None, still
    there is read once more, and only a file that cannot be read while it
    stays put is an error."""
    for attempt in range(_READ_ATTEMPTS):
        try:
            return _read_whole(target, path, limit)
        except TooLarge:
            raise
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


def _read_whole(target: Target, path: str, limit: int) -> bytes:
    name = path.rsplit("/", 1)[-1]
    with reading(target.uri, name), target.fs.open_input_stream(path) as f:
        parts: list[bytes] = []
        total = 0
        while True:
            part = f.read(min(CHUNK_SIZE, limit + 1 - total))
            if not part:
                return b"".join(parts)
            total += len(part)
            if total > limit:
                raise TooLarge(f"'{name}' in backup target '{target.uri}' is over {limit} "
                               "bytes: no file Cairn writes there is that large")
            parts.append(bytes(part))


def exists(target: Target, path: str) -> bool:
    return bool(target.fs.get_file_info(path).type == pafs.FileType.File)
