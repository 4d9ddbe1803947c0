"""A forked archive: the target's archive holds segments this server did not
ship. Two ways it happens, both with the same catalog record on two data
directories: a copy of the data directory (cp -a, a VM or volume snapshot)
started beside the original and sharing its backup root, or this server
brought back from an older copy of its own data directory (its record ends
before what it shipped since). Shipping on after the recorded end then wrote
segments of two diverging databases into one archive (overlapping ranges:
RESTORE refused every time in it). pgBackRest and WAL-G refuse to push a WAL
file the archive already holds with other contents, and a timeline switch
starts a new history; here the archiver never writes into such an archive
again and goes on in a new one, from a new base."""

from __future__ import annotations

import logging

from catalog import Archive
from catalog.ids import new_id
from storage.archive import store
from storage.archive.changes import ChangeLog
from storage.archive.store import Listing

log = logging.getLogger("cairn.archive")


def fork_reason(rec: Archive, listing: Listing) -> str | None:
    """Why the archive `rec` ships into is not this server's to continue, or
    None. This server's segments end exactly at its recorded end: a segment
    past it (in lsn or time) was written by another writer, and segments that
    overlap make RESTORE refuse every time in the archive."""
    assert rec.shipped_us is not None
    end_lsn, end_us = rec.shipped_lsn, rec.shipped_us
    past = [n for n in listing.segments if n.last_lsn > end_lsn or n.through_us > end_us]
    if past:
        return (f"archive {rec.archive_id} in {rec.target_text} holds segment {past[-1].file} "
                f"past what this server shipped (lsn {end_lsn}): another server with a copy "
                "of this data directory, or this server before it was brought back from an "
                "older copy, wrote it; archiving goes on in a new archive from a new base")
    wrong = store.listing_problems(rec.archive_id, listing)
    if wrong:
        return (f"archive {rec.archive_id} in {rec.target_text} cannot be restored from "
                f"({wrong[0]}); archiving goes on in a new archive from a new base")
    return None


def leave(rec: Archive, reason: str) -> None:
    """Point `rec` at a new archive (folder `archives/<ns>/<new id>/`) with no
    base yet: the next cycle takes one. The old archive is left as it is (its
    window is restorable up to where this server's segments end, unless the
    other writer's overlap it: then SHOW RESTORE POINTS, VERIFY ARCHIVE and
    RESTORE all give the same error)."""
    log.warning("archiving %s: %s", rec.namespace, reason)
    rec.archive_id = new_id("ar")
    rec.base_lsn = rec.base_us = rec.base_backup_id = None
    rec.last_error = reason


def own_end(changes: ChangeLog, rec: Archive, listing: Listing,
            start: tuple[int, int], end: tuple[int, int]) -> tuple[int, int]:
    """How far the segments store.written_after took past `start` (this
    server's recorded end) are this server's own: a segment it wrote and did
    not record (a crash between) holds changes its change log still has, the
    newest at the segment's last lsn and committed by its end. One written by
    a server this one was rolled back from holds other commits under the same
    lsns (later here, as the log was activated after it): it is not taken."""
    lsn, at = start
    while (lsn, at) != end:
        nxt = [n for n in listing.segments if (n.after_lsn, n.after_us) == (lsn, at)
               and (n.last_lsn, n.through_us) != (lsn, at)]
        if len(nxt) != 1:
            return lsn, at
        name = nxt[0]
        if not name.empty:
            raw = changes.read_raw(rec.namespace, name.after_lsn, name.last_lsn, 1 << 40)
            if raw is None or raw.last_lsn != name.last_lsn or raw.last_us > name.through_us:
                return lsn, at
        lsn, at = name.last_lsn, name.through_us
    return lsn, at
