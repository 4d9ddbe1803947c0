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
from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs

from .layout import MANIFESTS, is_backup_id, join
from .oserrors import reading
from .schema import LABEL_MAX
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


# What SHOW BACKUPS IN keeps of each manifest it lists, until it answers. It
# kept each checked document (its objects, a label of up to 65,536
# characters): 3,000 planted 61.7 KB manifests with 60,000-character labels
# took the server 230 -> 556 MB for one listing (all of it held until the
# answer was built), ~2 GB for 30,000. Now it keeps their summaries: no
# objects, no tables, and their labels together within LISTING_LABEL_CHARS (a
# label past its share is cut, saying so; never below LABEL_KEPT_MIN).
LISTING_LABEL_CHARS = 8 << 20
LABEL_KEPT_MIN = 1024
CUT = "… [label cut in this listing: {} more characters]"


def summary_keeper(listed: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What a listing of `listed` manifests for SHOW BACKUPS IN keeps of each
    checked one: its header and namespace_record, its label cut to its share;
    `objects` empty, as `tables` when it had them opened (totals.objects and
    object_bytes 0 with them, as load_header checks: SHOW BACKUPS shows neither)."""
    room = min(max(LABEL_KEPT_MIN, LISTING_LABEL_CHARS // max(listed, 1)),
               LABEL_MAX - len(CUT.format(LABEL_MAX)))

    def keep(m: dict[str, Any]) -> dict[str, Any]:
        kept = {k: [] if k in ("objects", "tables") else v for k, v in m.items()}
        if isinstance(m.get("totals"), dict):
            kept["totals"] = {**m["totals"], "objects": 0, "object_bytes": 0}
        label = kept.get("label")
        if isinstance(label, str) and len(label) > room:
            kept["label"] = label[:room] + CUT.format(len(label) - room)
        return kept

    return keep
