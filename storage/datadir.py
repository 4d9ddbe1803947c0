"""What the server checks of its data directory before it opens it.

The start-up sweep (`FileStore.sweep`) deletes every data file the catalog does
not reference. With a catalog that is new (catalog/ lost, emptied, or on a mount
that did not come up; or a folder that was never a Cairn data directory) every
file there is unreferenced: opening it would destroy each table's data, or a
user's own files, in silence. Such a data directory is refused instead, before
the catalog is made, naming what is there and what to do."""

from __future__ import annotations

import os
from pathlib import Path

from catalog.errors import CannotStart

OWN_DIRS = ("files", "tmp")  # the folders Cairn writes data and temporary files to


def _entries(path: Path) -> list[str]:
    """Names in `path` (none if it is not a directory)."""
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def catalog_is_new(data_dir: Path) -> bool:
    """Whether opening the catalog would create it: RocksDB's CURRENT is not there."""
    return not os.path.lexists(data_dir / "catalog" / "CURRENT")


def check(data_dir: Path) -> None:
    """Raise CannotStart if `data_dir` must not be opened as it is: `files/` or
    `tmp/` a symbolic link (the sweep would work on another folder), or a new
    catalog beside a `files/` or `tmp/` that holds anything."""
    for name in OWN_DIRS:
        if (data_dir / name).is_symlink():
            raise CannotStart(
                f"'{data_dir / name}' is a symbolic link: Cairn does not follow links in its "
                f"data directory (its start-up clean-up would delete files where it points); "
                f"make it a directory (mount another disk there, or move the whole data "
                f"directory)")
    if not catalog_is_new(data_dir):
        return
    held = {name: _entries(data_dir / name) for name in OWN_DIRS}
    if not any(held.values()):
        return
    catalog = data_dir / "catalog"
    there = _entries(catalog)
    why = ("has no catalog/" if not catalog.exists() else
           "has an empty catalog/" if not there else "has a catalog/ with no CURRENT file")
    what = " and ".join(f"{name}/ holds {len(found)} entr{'y' if len(found) == 1 else 'ies'} "
                        f"({', '.join(found[:3])}{', …' if len(found) > 3 else ''})"
                        for name, found in held.items() if found)
    raise CannotStart(
        f"the data directory '{data_dir}' {why} but {what}: a new catalog would delete them. "
        f"If catalog/ is on a disk or mount that is not there, bring it back and start again; "
        f"if this is not a Cairn data directory, give --data-dir (or [storage] data_dir) "
        f"another folder; to start afresh here, move files/ and tmp/ out of it first")
