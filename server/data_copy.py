"""A data directory that is a copy (cp -a to another place, a restored
backup of the disk) keeps the catalog's server id, so the backups its
catalog recorded before the copy (system.backups) name it and the original
alike. Each would take them as its own: a copy's inherited `KEEP LAST`
schedule dropped every backup of the original. At start-up the directory's
place (real path, device, inode) is compared with the one recorded: when it
differs, the backups recorded so far are noted as inherited, and keep_last
never drops them (storage/backup/origin.py `Origin.inherited`); DROP BACKUP
by id still does. A VM snapshot started in the same place cannot be told
from the original this way (the catalog check of each backup still holds)."""

from __future__ import annotations

import logging
import os

from catalog import Backup, Meta
from catalog.store import Catalog

log = logging.getLogger("cairn.backup")

PLACE, INHERITED = "data_dir_place", "inherited_backups"


def place(data_dir: str) -> str:
    """Where the data directory is: its real path, device and inode."""
    st = os.stat(data_dir)
    return f"{os.path.realpath(data_dir)}|{st.st_dev}|{st.st_ino}"


def note_copy(catalog: Catalog, data_dir: str) -> None:
    """Start-up: record the data directory's place; if it moved since (a
    copy, or a move), the backups its catalog records are inherited."""
    here = place(data_dir)
    was = catalog.get(Meta, PLACE)
    if was is not None and was.value != here:
        before = catalog.get(Meta, INHERITED)
        ids = set(before.value if before is not None else ())
        ids |= {b.backup_id for b in catalog.scan(Backup)}
        catalog.put(Meta(INHERITED, sorted(ids)))
        log.warning("the data directory %s was copied or moved (it was at %s): keep_last "
                    "never drops the %d backups its catalog recorded before (the original "
                    "may still use them); drop them by id when they are not needed",
                    data_dir, str(was.value).split("|")[0], len(ids))
    if was is None or was.value != here:
        catalog.put(Meta(PLACE, here))


def inherited(catalog: Catalog) -> frozenset[str]:
    """The backups recorded before the data directory was copied or moved."""
    meta = catalog.get(Meta, INHERITED)
    return frozenset(meta.value if meta is not None else ())
