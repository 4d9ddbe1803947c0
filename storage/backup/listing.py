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
