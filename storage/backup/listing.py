"""Listing a folder of a backup target, keeping only names Cairn could have
written.

Every name Cairn writes is ASCII. An object store's LIST answer may name a
key that is not UTF-8 (one is stored so, or a store lies): pyarrow lists it,
and reading its `path` or `base_name` raised UnicodeDecodeError, a 500
INTERNAL in SHOW BACKUPS IN, BACKUP, DROP BACKUP and RESTORE. Such a key is
not Cairn's, like any other foreign name: left out (a WARNING line names
the folder), never read, moved or deleted."""

from __future__ import annotations

import logging

import pyarrow.fs as pafs

from .layout import MANIFESTS, is_backup_id, join
from .oserrors import reading
from .targets import Target

log = logging.getLogger(__name__)

_warned: set[tuple[str, str]] = set()


def list_folder(target: Target, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
    """The entries under `path` (none when it is not there), OS errors mapped
    as `reading` maps them, names that are not UTF-8 left out (`named`)."""
    selector = pafs.FileSelector(path, recursive=recursive, allow_not_found=True)
    with reading(target.uri):
        return named(target, target.fs.get_file_info(selector))


def named(target: Target, infos: list[pafs.FileInfo]) -> list[pafs.FileInfo]:
    """`infos` without the entries whose names are not UTF-8."""
    out = []
    for info in infos:
        try:
            info.path  # noqa: B018 (decoded here, or never)
        except UnicodeDecodeError:
            log.warning("backup target '%s' lists a name that is not UTF-8 (not Cairn's: "
                        "left alone)", target.uri)
            continue
        out.append(info)
    return out


def left_alone(target: Target, path: str) -> None:
    """A WARNING that keys below `path` (a name Cairn writes a file at, on
    object storage) are not Cairn's and are left alone: once a process for
    each, as listings run often."""
    key = (target.uri, path)
    if key not in _warned and len(_warned) < 1000:
        _warned.add(key)
        log.warning("backup target '%s' holds keys below '%s/', which are not Cairn's "
                    "(not what that name is: left alone)", target.uri, path)


def manifest_sizes(target: Target) -> dict[str, int]:
    """The ids of `manifests/<id>.json`, each once, with the size listed (0 when
    none is). Locally a directory (a FIFO, …) of that name is listed: read, it is
    damage. On object storage one is keys below the name (`<id>.json/junk`, a
    console's folder), no manifest (a WARNING names it): it listed a backup
    twice, and keep_last dropped one it had to keep."""
    ids: dict[str, int] = {}
    for info in list_folder(target, join(target.base, MANIFESTS)):
        name = info.base_name
        if not (name.endswith(".json") and is_backup_id(name[:-5])):
            continue
        if info.type == pafs.FileType.Directory and target.kind == "s3":
            left_alone(target, f"{MANIFESTS}/{name}")
            continue
        if info.type != pafs.FileType.NotFound:
            ids[name[:-5]] = info.size or 0
    return ids
