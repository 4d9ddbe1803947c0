"""Which backups in a shared target are this server's namespace's.

Servers sharing a target may each have a namespace of one name: different
databases. A manifest names the data directory that wrote it
(`namespace_record.server`, `Catalog.server_id`); one written before the field
has only the namespace's `created_at`. keep_last drops, and a RESTORE without
`backup_id` picks, only backups of this server's namespace, and of the
server it was restored from: never the other way round (the server restored
from never takes its copy's backups as its own)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from catalog.errors import AlreadyExists, NotFound, Unavailable

from .restored import by_then, names_no_other
from .selection import parse_time
from .writing import lock_ids


@dataclass(frozen=True)
class Origin:
    """This server (`server`) and its namespace's `created_at` (None: no such
    namespace here), and the namespace's `restored_from` (Namespace)."""

    server: str
    created_at: str | None = None
    restored_from: dict[str, str] | None = None
    # the backups this server's catalog records (system.backups; None: not asked)
    known: frozenset[str] | None = None
    # of those, the ones recorded before the data directory was copied or moved
    # (server/data_copy.py): keep_last never drops them
    inherited: frozenset[str] = frozenset()
    # backup (or set) id -> job id of this server's BACKUP jobs not ended, read
    # before `known`: a backup whose manifest landed and whose record is not
    # in yet is one of these (server/backup_writing.py)
    writing: Mapping[str, str] = field(default_factory=dict)
    # the namespace's RESTORE TABLEs (Namespace.restored_tables): a time after
    # one is judged for that table by it (restored.table_cut)
    restored_tables: list[dict[str, str]] | None = None

    def in_flight(self, m: dict[str, Any]) -> str | None:
        """The job id when `m` names this server, its catalog does not record
        it and a BACKUP job here writing it (or its set) has not ended: this
        server's own backup, still being written. Else None."""
        record = m.get("namespace_record")
        backup_id = m.get("backup_id")
        if self.known is None or not isinstance(record, dict) or not isinstance(backup_id, str) \
                or record.get("server") != self.server or backup_id in self.known:
            return None
        return next((self.writing[i] for i in sorted(lock_ids(backup_id))
                     if i in self.writing), None)

    def written_here(self, m: dict[str, Any]) -> bool:
        """Whether `m`, if it names this server, is one this data directory
        wrote: its catalog records it, or a BACKUP job here still writing it
        (`in_flight`). A copy of the data directory (cp -a, a
        VM snapshot) keeps the server id, so its backups name this server
        too; so do the newer backups of this server when it was brought back
        from an older copy of its data directory. Neither is dropped by
        keep_last nor taken by a RESTORE without backup_id (ALREADY_EXISTS
        names it: see choose_own)."""
        record = m.get("namespace_record")
        if self.known is None or not isinstance(record, dict):
            return True
        return record.get("server") != self.server or m.get("backup_id") in self.known \
            or self.in_flight(m) is not None

    def owns(self, m: dict[str, Any], lineage: bool = False) -> bool:
        """Whether the listed manifest `m` is a backup of this server's namespace
        (keep_last counts and drops only those): it names this server, or was
        written before manifests named one, and its namespace was created at
        the same instant as this server's (a restore keeps the creation time).
        A namespace of that name dropped before is another database, whose
        backups keep_last leaves alone (a schedule's keep_last dropped them all
        once the name was created again, until 2026-12-06). `lineage`:
        also one by the server this namespace was restored from, of the same
        namespace (a restore keeps its creation time), for RESTORE: a server
        that restored another's backup restores again from that database's
        backups, newer ones too (a drill server refreshed from production).
        Not the other way: the server restored from never takes the copy's
        backups (a drill's rows are not production's).
        An entry without its body (damaged, or encrypted and not opened) is not
        known to be."""
        record = m.get("namespace_record")
        if not isinstance(record, dict):
            return False
        same_namespace = self.created_at is not None and record.get("created_at") == self.created_at
        server = record.get("server")
        if server is not None and server != self.server:
            return lineage and same_namespace and self._restored_from(server)
        return (lineage and server is not None) or same_namespace

    def _restored_from(self, server: str) -> bool:
        """Is `server` the one whose database this namespace was restored from?"""
        source = self.restored_from
        return isinstance(source, dict) and source.get("server") == server


def choose_own(repo: Any, namespace: str, backup_id: str | None, as_of: str | None,
               accept: Callable[[dict[str, Any]], bool], origin: Origin | None,
               what: str | None = None, table: str | None = None) -> dict[str, Any]:
    """`repo.choose_backup` for a RESTORE on this server: with `backup_id`, that
    one, whoever wrote it. Without, the newest backup of this server's namespace
    (an entry not opened, such as an encrypted one without its passphrase, is
    taken as it was, so that reading it says why). When this server has no such
    namespace and no backup of its own of that name, the newest of any server
    (a fresh server restoring another's). When it has the namespace, another
    server's backups are never taken: NOT_FOUND lists them, to name one with
    `backup_id`. `table`: RESTORE TABLE's (a time is judged for it alone,
    restored.by_then)."""
    if backup_id is not None or origin is None:
        return dict(repo.choose_backup(namespace, backup_id, as_of, accept=accept, what=what))
    server_only = Origin(origin.server)

    def own(by: Origin) -> Callable[[dict[str, Any]], bool]:
        return lambda m: accept(m) and taken_as_own(by, m)

    try:
        chosen = by_then(repo, namespace, as_of, accept, own(origin), origin, what, table) \
            or dict(repo.choose_backup(namespace, None, as_of, what=what,
                                       accept=own(origin if origin.created_at else server_only)))
    except NotFound:
        if origin.created_at is None:  # no such namespace here: any server's
            return dict(repo.choose_backup(namespace, None, as_of, accept=accept, what=what))
        limit = parse_time(as_of) if as_of is not None else None
        others = [m["backup_id"] for m in repo.listing(namespace)
                  if "error" not in m and accept(m) and not own(origin)(m)
                  and (limit is None or parse_time(m["snapshot_at"]) <= limit)]
        if not others:
            raise
        listed = ", ".join(others[:10]) + (", …" if len(others) > 10 else "")
        raise NotFound(
            f"no backup of this server's namespace '{namespace}' in target '{repo.uri}'; the "
            f"target's backups of a namespace '{namespace}' were written by another server "
            f"(another database of that name): {listed}; name one with backup_id = '…' to "
            f"restore it") from None
    job_id = origin.in_flight(chosen)
    if job_id is not None:  # neither it nor an older one in its stead: retry
        raise Unavailable(
            f"the newest backup of namespace '{namespace}' in target '{repo.uri}' "
            f"('{chosen['backup_id']}') is still being written by job '{job_id}' (its "
            "manifest is in the target, its job has not ended); nothing was restored. Retry "
            "once that job has ended, or name a backup with backup_id = '…'")
    if not origin.written_here(chosen):
        raise AlreadyExists(
            f"the newest backup of namespace '{namespace}' in target '{repo.uri}' "
            f"('{chosen['backup_id']}') names this server but this server's catalog has no "
            "record of writing it: a copy of this data directory (a VM or volume snapshot, "
            "cp -a) started elsewhere wrote it, or this server wrote it before it was brought "
            "back from an older copy; name the backup to restore with backup_id = '…'")
    return chosen


def taken_as_own(origin: Origin, m: dict[str, Any]) -> bool:
    """Whether a RESTORE without `backup_id` takes the listed manifest `m` as
    one of this server's namespace (or the namespace it was restored from):
    an entry without its body (damaged, or encrypted and not opened) is taken,
    so that reading it says why."""
    return "namespace_record" not in m or origin.owns(m, lineage=True)


def own_filter(origin: Origin | None,
               entries: list[dict[str, Any]]) -> Callable[[dict[str, Any]], bool] | None:
    """Which of a namespace's listed backups (`entries`) a RESTORE to a time
    without `backup_id` may build on, as `choose_own` picks a plain one: this
    server's namespace's. None (any server's) without an origin, or when this
    server has no such namespace and no backup of that name of its own (a
    fresh server restoring another's)."""
    if origin is None:
        return None
    if origin.created_at is not None:
        return lambda m: taken_as_own(origin, m)
    server_only = Origin(origin.server)
    if any("namespace_record" in m and server_only.owns(m, lineage=True) for m in entries):
        return lambda m: taken_as_own(server_only, m)
    return None


def window_filter(origin: Origin | None,
                  entries: list[dict[str, Any]]) -> Callable[[dict[str, Any]], bool] | None:
    """Which of a namespace's listed backups may be the base of a window a
    RESTORE to a time without `backup_id` replays (and SHOW RESTORE POINTS
    calls `own`): `own_filter`'s, less those another server wrote. The lineage
    rule (a server restored from another's takes that server's backups as its
    own) is for a backup to restore; an archive is a database's changes after
    its base, and the server restored from writes its own database's, not this
    namespace's: B restored from A, writing rows of its own, restored A's rows
    to a time in both archives (whose window ended last won), and A's archive
    hid B's plain backups, until 2026-12-07."""
    keep = own_filter(origin, entries)
    if keep is None or origin is None:
        return keep
    return lambda m: keep(m) and names_no_other(origin, m)


def whose(record: Any) -> dict[str, str | None]:
    """What a catalog record of a backup (catalog.Backup) keeps of its manifest's
    `namespace_record` (a document's dict, or a decoded Manifest's): `server`,
    the data directory that wrote it, and `namespace_created_at`; None where
    not said (an encrypted manifest's public header has no namespace_record)."""
    if isinstance(record, dict):
        server, created = record.get("server"), record.get("created_at")
    else:  # a Manifest's NamespaceRecord (its server may be UNSET), or None
        server, created = getattr(record, "server", None), getattr(record, "created_at", None)
    return {"server": server if isinstance(server, str) else None,
            "namespace_created_at": created if isinstance(created, str) else None}


def recorded_own(origin: Origin, server: str | None, namespace_created_at: str | None,
                 made_here: bool) -> bool | None:
    """Whether this server's catalog record of a backup of `origin`'s namespace's
    name is a backup of that namespace, by the rule a RESTORE without
    `backup_id` takes one by (`Origin.owns`, lineage): its manifest's writer
    and namespace creation time as recorded (`whose`), or, for a record of a
    BACKUP run here (`made_here`) from before they were recorded, this server.
    None when the record cannot tell (an ATTACHed backup recorded before them,
    an encrypted one attached without its passphrase): such a backup never
    makes a namespace's backup age fresh (cairn_backup_age_seconds, the web
    console's panel); ATTACH BACKUPS again records them."""
    writer = origin.server if server is None and made_here else server
    if writer is None and namespace_created_at is None:
        return None
    return origin.owns({"namespace_record": {"server": writer,
                                             "created_at": namespace_created_at}}, lineage=True)


def listed_own(origin: Origin, m: dict[str, Any]) -> bool | None:
    """The same of a manifest listed in a target (SHOW BACKUPS … IN): whether a
    RESTORE without `backup_id` takes it as a backup of `origin`'s namespace
    (one naming this server only if this server wrote it: `written_here`);
    None when its body is not read (damaged, or encrypted and not opened)."""
    if "error" in m or not isinstance(m.get("namespace_record"), dict):
        return None
    return origin.owns(m, lineage=True) and origin.written_here(m)
