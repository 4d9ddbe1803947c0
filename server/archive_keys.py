"""Which archives of a namespace in a target VERIFY ARCHIVE's passphrase (or
its absence) opens.

START ARCHIVING into a target that holds an archive of the namespace under
one encryption_passphrase (or none) may use another: each archive's windows
restore with their own passphrase only. VERIFY ARCHIVE checks the windows its
passphrase opens and names the others as not checked (until 2026-12-07 the
whole job was BACKUP_INVALID "wrong encryption_passphrase for backup <the other
window's base>" with either passphrase: such a target could never be called
valid). An archive is another passphrase's when no base backup of any of its
windows opens with this one (read as RESTORE reads it); one without a window
(its base dropped), when its first segment does not; and in both cases none
of its segments does (a segment that opens says whose the archive is: until
2026-12-07 a base header rewritten by someone without the key to name a key
of their own made a damaged archive "another passphrase's", VERIFY valid).
A base or segment that does not open inside an archive that does is no such
thing: it is an error, as RESTORE refuses it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from catalog.errors import BackupInvalid, NotFound
from storage.archive import pitr, store
from storage.backup import NotEncrypted, PassphraseError, Repository

OTHER = "archived under another encryption_passphrase"
PLAIN = "not encrypted"
SEALED = "encrypted"

HINTS = {  # how to verify or restore such a window
    OTHER: "give the passphrase it was archived with",
    PLAIN: "leave the encryption_passphrase out",
    SEALED: "give its encryption_passphrase",
}


@dataclass(frozen=True)
class Foreign:
    """An archive this passphrase does not open: why, and the error reading it gave."""

    why: str
    error: BackupInvalid


def why_not(repo: Repository, exc: BackupInvalid) -> str | None:
    """Why `exc` (reading a base's manifest or a segment) is a matter of the
    passphrase and not of damage, or None."""
    if isinstance(exc, NotEncrypted):
        return PLAIN
    if isinstance(exc, PassphraseError):
        return OTHER if repo.encrypted else SEALED
    return None


def foreign_archives(repo: Repository, namespace: str, listings: dict[str, store.Listing],
                     bases: list[store.Base]) -> dict[str, Foreign]:
    """The archives (by id) this repository's passphrase opens none of. Empty
    when it opens none at all: then VERIFY refuses as before (a wrong
    passphrase is BACKUP_INVALID, a plain archive read with one is invalid)."""
    out: dict[str, Foreign] = {}
    held = [aid for aid, listing in listings.items() if listing.segments]
    for aid in held:
        listing = listings[aid]
        runs = store.runs_of(aid, listing.segments)[0]
        firsts = [b for w in store.windows(runs, bases) for b in w.bases]
        found = (_bases(repo, firsts) if firsts
                 else _segment(repo, namespace, aid, listing.segments[0]))
        # Any of its segments opening is the archive's own proof it is this
        # passphrase's: its bases (or first segment) not opening is damage.
        if found is not None and not _opens_a_segment(repo, namespace, aid, listing.segments):
            out[aid] = found
    return {} if len(out) == len(held) else out


def _bases(repo: Repository, bases: list[store.Base]) -> Foreign | None:
    """Foreign when no base opens for want of the passphrase (damage opens: it is checked)."""
    first: Foreign | None = None
    for b in bases:
        try:
            repo.read_manifest(b.backup_id)
        except BackupInvalid as exc:
            why = why_not(repo, exc)
            if why is None:
                return None
            first = first or Foreign(why, exc)
            continue
        except NotFound:
            return None
        return None
    return first


def _segment(repo: Repository, namespace: str, aid: str, name: Any) -> Foreign | None:
    try:
        store.read_segment(repo, namespace, aid, name)
    except BackupInvalid as exc:
        why = why_not(repo, exc)
        return None if why is None else Foreign(why, exc)
    except NotFound:
        return None
    return None


def _opens_a_segment(repo: Repository, namespace: str, aid: str, names: list[Any]) -> bool:
    """True when one of the archive's segments opens with this passphrase (or
    its absence). Someone without the key who rewrote its bases' headers to
    name a key of their own (or a plain base in its place) made an archive
    of this passphrase look another's: VERIFY said it valid, its windows
    "not checked", while RESTORE of them was refused."""
    for name in names:
        try:
            store.read_segment(repo, namespace, aid, name)
        except (BackupInvalid, NotFound):
            continue
        return True
    return False


def not_checked(namespace: str, listings: dict[str, store.Listing], bases: list[store.Base],
                foreign: dict[str, Foreign]) -> list[dict[str, Any]]:
    """VERIFY ARCHIVE's `not_checked`: each window of a foreign archive (a run
    without a base: its changes), with its base backup, time span and why."""
    out: list[dict[str, Any]] = []
    for aid, f in sorted(foreign.items()):
        runs = store.runs_of(aid, listings[aid].segments)[0]
        wins = store.windows(runs, bases)
        spans: list[tuple[int, int, str | None]] = [
            (w.start_us, w.end_us, w.bases[0].backup_id) for w in wins] or [
            (r.after_us, r.through_us, None) for r in runs]
        out += [{"start_time": store.iso(start), "end_time": store.iso(end),
                 "base_backup_id": base, "archive_id": aid, "why": f.why}
                for start, end, base in spans]
    return sorted(out, key=lambda w: (store.parse_us(w["start_time"]), w["archive_id"]))


def describe(namespace: str, rows: list[dict[str, Any]]) -> str:
    """The not-checked windows in a sentence (the answer's message, the job's
    error_message)."""
    first = rows[0]
    base = (f"base backup {first['base_backup_id']}" if first["base_backup_id"]
            else f"archive {first['archive_id']}, no base backup")
    more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
    return (f"{len(rows)} window(s) of namespace '{namespace}' not checked: from "
            f"{first['start_time']} to {first['end_time']} ({base}), {first['why']}: "
            f"{HINTS[first['why']]}{more}")


def refused_window(repo: Repository, tp: pitr.TimePlan, exc: BackupInvalid) -> BackupInvalid:
    """A RESTORE `as_of`'s refusal to read its base (`exc`), naming the window
    when the passphrase (or its absence) is why, as VERIFY ARCHIVE names it
    not checked; the same class (BACKUP_INVALID)."""
    why = why_not(repo, exc)
    if why is None:
        return exc
    return type(exc)(
        f"as_of {store.iso(tp.as_of_us)} is in the window of archive {tp.archive_id} from "
        f"base backup {tp.base_id} ({store.iso(tp.base_us)}), which is {why}: {HINTS[why]} "
        f"(VERIFY ARCHIVE names it not checked); {exc.message}")
