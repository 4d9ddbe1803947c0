"""Which backups a target holds, damaged ones included, and which one a RESTORE
takes: never an older backup because a newer one cannot be read.

A manifest that cannot be read is still listed, as `{"backup_id", "error"}`,
and with its `namespace`, `created_at` and `snapshot_at` when this server's
catalog records its backup id (recorded.py), else when its own checksum
vouches for them and it names the backup of its file's name (the damage is
elsewhere: a structural problem, a missing key file, a damaged body). A copy
of another backup's manifest vouches for that other backup, not for the one
whose name it took (until 2026-12-06 its times made the newest backup count
as older). Without either, nothing about it is known, so it may be the
newest backup of any namespace."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from catalog.errors import BackupInvalid, InvalidArgument, NotFound, Unavailable

from .. import timetext
from .manifest import checksum
from .records import deep_problem, dense_problem


class Backups(Protocol):
    """What choosing needs of a repository."""

    @property
    def uri(self) -> str: ...

    def listing(self, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def read_manifest(self, backup_id: str, require_body: bool = True) -> dict[str, Any]: ...

HINTS = ("namespace", "created_at", "snapshot_at")

# A damaged entry's mark: the manifest could not be read now (the target did
# not answer, or answered "not found" for a manifest it lists), not damage.
UNAVAILABLE = "unavailable"


def unreadable(entry: dict[str, Any]) -> type[BackupInvalid] | type[Unavailable]:
    """What refusing because of damaged entry `entry` raises: UNAVAILABLE (503)
    when its manifest could not be read now (a store answering 503 or 429 to
    its GET), else BACKUP_INVALID. RESTORE without backup_id said 422, a
    damaged backup, of a throttled newest manifest that VERIFY, RESTORE by id
    and keep_last called 503, to be tried again."""
    return Unavailable if entry.get(UNAVAILABLE) else BackupInvalid


def parse_time(text: str, what: str = "time") -> datetime:
    """An ISO-8601 time (timetext.INSTANT_FORM, nothing looser) as an aware UTC
    datetime; one without a zone is UTC. The one reader of RESTORE's `as_of`."""
    try:
        when = timetext.instant(text) if isinstance(text, str) else None
    except ValueError as exc:
        raise InvalidArgument(f"{what} {text!r} is not a time that exists ({exc})") from None
    if when is None:
        raise InvalidArgument(f"{what} {text!r} is not an ISO-8601 time of the form "
                              f"{timetext.INSTANT_FORM}, like '2026-11-20T00:00:00Z'")
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:  # before year 1 or past 9999 once in UTC: before or after all
        edge = datetime.min if when.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


def _time_or_none(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except InvalidArgument:
        return None


def hints(data: bytes | None, backup_id: str) -> dict[str, str]:
    """What damaged manifest `backup_id`'s own checksum vouches for (see the module docstring)."""
    if not data or dense_problem(data) or deep_problem(data):
        return {}
    try:
        # UTF-8 only, as _parse_json: json.loads of bytes takes UTF-16 and
        # UTF-32 too, whose `\"` the density and depth checks (bytes, UTF-8)
        # read as a string's end: 64 MiB of UTF-16 `[],` past the cap was
        # parsed whole (0.8 GB, 3 s of a held GIL for each damaged manifest).
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict):
            return {}
        stored = doc.pop("manifest_sha256", None)
        if not isinstance(stored, str) or checksum(doc) != stored \
                or doc.get("backup_id") != backup_id:
            return {}
    except (ValueError, TypeError, RecursionError):
        return {}
    found = {k: doc[k] for k in HINTS if isinstance(doc.get(k), str) and len(doc[k]) <= 256}
    for k in ("created_at", "snapshot_at"):
        if k in found and _time_or_none(found[k]) is None:
            del found[k]
    return found


def damaged_entry(backup_id: str, error: str, data: bytes | None) -> dict[str, Any]:
    return {"backup_id": backup_id, "error": error, **hints(data, backup_id)}


def newest_first(m: dict[str, Any]) -> tuple[int, datetime, datetime, str]:
    """Sort key (with reverse=True) for "newest": by snapshot (snapshot_at,
    then created_at, then id), since a backup that started later holds newer
    rows however long its upload took (created_at is when its manifest
    landed). A damaged one of unknown age comes first; one whose snapshot is
    unknown counts at its created_at (a snapshot is never later)."""
    made = _time_or_none(m.get("created_at"))
    taken = _time_or_none(m.get("snapshot_at")) or made
    return (1 if made is None else 0, taken or _EPOCH, made or _EPOCH, m.get("backup_id", ""))


_EPOCH = datetime.min.replace(tzinfo=UTC)


def may_be_of(entry: dict[str, Any], namespace: str | None) -> bool:
    """Whether a damaged entry may be a backup of `namespace` (None: any)."""
    return namespace is None or entry.get("namespace") in (None, namespace)


def choose(
    repo: Backups, namespace: str, backup_id: str | None = None, as_of: str | None = None,
    accept: Callable[[dict[str, Any]], bool] | None = None, what: str | None = None,
) -> dict[str, Any]:
    """The manifest a RESTORE of `namespace` takes: `backup_id`, else the newest
    backup of it (taken at or before `as_of`). BackupInvalid (422) when a backup
    that cannot be read may be that newest one; NotFound when there is none
    (naming `what` the backups `accept`ed must hold, e.g. "table ns.t")."""
    if backup_id is not None:
        m = repo.read_manifest(backup_id)
        if m["namespace"] != namespace:
            raise InvalidArgument(
                f"backup '{backup_id}' is of namespace '{m['namespace']}', not '{namespace}'"
            )
        return m
    limit = parse_time(as_of) if as_of is not None else None
    entries = repo.listing(namespace)
    good = [
        m for m in entries
        if "error" not in m and (limit is None or parse_time(m["snapshot_at"]) <= limit)
        and (accept is None or accept(m))
    ]
    pick = good[0] if good else None  # newest snapshot first (Repository.listing)
    for bad in (e for e in entries if "error" in e):
        snapshot = _time_or_none(bad.get("snapshot_at"))
        if limit is not None and snapshot is not None and snapshot > limit:
            continue
        # Older than the pick's snapshot: not the newest (a snapshot is never after its creation).
        older = snapshot if snapshot is not None else _time_or_none(bad.get("created_at"))
        if pick is not None and older is not None and older < parse_time(pick["snapshot_at"]):
            continue
        raise unreadable(bad)(
            f"backup '{bad['backup_id']}' in target '{repo.uri}' cannot be read and may be the "
            f"newest backup of namespace '{namespace}'; nothing was restored (name a backup "
            f"with backup_id = '…' to restore another one): {bad['error']}"
        )
    if pick is None:
        when = f" taken at or before {as_of}" if as_of else ""
        if what is not None:
            raise NotFound(f"no backup{when} in target '{repo.uri}' holds {what}")
        raise NotFound(f"no backup of namespace '{namespace}'{when} in target '{repo.uri}'")
    if "tables" not in pick or pick.get("encrypted") is not True:
        # encrypted, and not opened: say why (passphrase); plain: refused if a
        # passphrase was given (Repository.read_manifest)
        return repo.read_manifest(pick["backup_id"])
    return pick
