"""What the server checks of its data directory before it opens it.

The start-up sweep (`FileStore.sweep`) deletes every data file the catalog does
not reference. With a catalog that is new (catalog/ lost, emptied, or on a mount
that did not come up; or a folder that was never a Cairn data directory) every
file there is unreferenced: opening it would destroy each table's data, or a
user's own files, in silence. Such a data directory is refused instead, before
the catalog is made, naming what is there and what to do."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from catalog.errors import CannotStart
from storage import private_tree
from storage.owners import others_way

OWN_DIRS = ("files", "tmp")  # the folders Cairn writes data and temporary files to

log = logging.getLogger("cairn.storage")


def make_private(data_dir: Path, given: str | Path | None = None) -> None:
    """Make `data_dir` (mode 0700) or take it as it is, as a folder no other local
    user can enter. Everything in it (every table's rows in Parquet and RocksDB,
    the catalog with archives' encryption passphrases, DuckDB's spill files,
    restores in flight) was created under the umask: 0644 files in 0755 folders
    at the usual 022, which any user of the machine could read (and with a
    loose umask, 000, change). An existing folder readable, writable or
    enterable by group or others is set to 0700 (a WARNING says so); one of
    another user's (they could read, change or re-point anything in it) is
    refused: CannotStart, and so is one reached through a link or a folder of
    another user's (`given`: the path as configured). One found open, or whose
    own folders are (a release that closed only the top one), has the trees of
    its own folders closed (private_tree.py): a shell of another user's inside
    read on. Nothing else in it is changed: it may be a folder that held the
    user's own files first (a home or project folder given as `--data-dir .`)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (why := others_way(given or data_dir, data_dir)) is not None:
        raise CannotStart(
            f"the data directory '{data_dir}' is not allowed: {why}: another user could "
            f"move it or point it elsewhere, and read and change every table's files: give --data-dir "
            f"(or [storage] data_dir) a folder on a way of your own")
    st = os.stat(data_dir)
    if st.st_uid != os.geteuid():
        raise CannotStart(
            f"the data directory '{data_dir}' belongs to another user (uid {st.st_uid}; Cairn "
            f"runs as uid {os.geteuid()}), who could read and change every table's files: "
            f"chown it to the user running Cairn, or give --data-dir another folder")
    loose = bool(stat.S_IMODE(st.st_mode) & 0o077)
    if loose:
        os.chmod(data_dir, 0o700)
        log.warning("the data directory '%s' was open to other users (mode %03o): set to 0700",
                    data_dir, stat.S_IMODE(st.st_mode))
    if loose or any(_open_dir(data_dir / name) for name in (*OWN_DIRS, "catalog")):
        # Found open (or a release that closed only the top folder): a shell
        # of another user's inside it reads on, so the whole tree is closed.
        # Cairn's own folders only: the data directory may be a folder that
        # held the user's files first (`--data-dir .` in a home folder).
        own = ("catalog", *OWN_DIRS) + (() if catalog_is_new(data_dir) else ("backups",))
        changed, seen, refused = private_tree.close_tree(data_dir, own)
        if changed:
            log.warning("the data directory '%s' held %d of %d files and folders open to "
                        "other users: set to the owner's alone (chmod go=)",
                        data_dir, changed, seen)
        if refused:
            log.warning("the data directory '%s' holds %d files or folders open to other "
                        "users that the file system would not change (a read-only mount "
                        "in it?): run chmod -R go= on its %s where they are",
                        data_dir, refused, "/, ".join(own) + "/")


def _open_dir(path: Path) -> bool:
    """A folder (not a link) that group or others may use."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and bool(stat.S_IMODE(st.st_mode) & 0o077)


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
