"""The catalog's backup records against what their target holds.

Another server sharing a target may drop a backup this server wrote (DROP
BACKUP drops any by id); only the dropping server forgot its record. This
server went on listing it (SHOW BACKUPS, system.backups) and counting it in
`cairn_backup_age_seconds` for good, so the staleness alert never fired. Each
statement that reads the target anyway on the server (SHOW BACKUPS IN,
RESTORE, VERIFY BACKUP; keep_last reads it in its job process only, so not
there) forgets the records of backups the target provably no
longer holds: the target is there and the manifest is absent. A read error
proves nothing and forgets nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable

from catalog import Backup
from catalog.errors import AlreadyExists, CairnError
from storage.backup import Repository
from storage.backup.selection import parse_time

from .state import Cairn

log = logging.getLogger("cairn.backup")


def forget_gone(cairn: Cairn, repo: Repository, namespace: str | None = None,
                backup_id: str | None = None) -> list[str]:
    """Forget this server's records of backups in `repo`'s target (of
    `namespace`, or the one `backup_id`, when given) whose manifest the target
    no longer holds; returns their ids. Each is looked for once more after
    the listing: a backup whose record was written after it is not forgotten."""
    records = [b for b in cairn.catalog.scan(Backup) if b.target == repo.uri
               and (namespace is None or b.namespace == namespace)
               and (backup_id is None or b.backup_id == backup_id)]
    if not records or repo.target.kind == "archive":  # an archive file is read whole
        return []
    try:
        if not repo.exists() or repo.check_config() is None:
            return []  # an unmounted disk (its empty mount point), a deleted prefix: no proof
        present = set(repo.manifest_ids())
        gone = [b.backup_id for b in records
                if b.backup_id not in present and not repo.has_manifest(b.backup_id)]
    except CairnError as exc:
        log.warning("could not check the backups recorded in %s: %s", repo.uri, exc.message)
        return []
    for bid in gone:
        record = cairn.catalog.get(Backup, bid)
        if record is not None and record.target == repo.uri:
            cairn.catalog.delete(Backup, bid)
            log.warning("backup %s is no longer in target %s (dropped by another server, or "
                        "removed from outside): this server no longer lists it", bid, repo.uri)
    return gone


def proven_gone(repo: Repository, backup_id: str) -> bool:
    """Whether `repo`'s target provably no longer holds `backup_id`: it is
    there, it is a Cairn target (its config.json: an empty mount point is
    not), and the manifest is absent (and not listed: scan.not_served). A
    read error proves nothing."""
    try:
        return (repo.exists() and repo.check_config() is not None
                and not repo.has_manifest(backup_id) and not repo.still_listed([backup_id]))
    except CairnError:
        return False



def whole_namespace(namespace: str) -> Callable[[Backup], bool]:
    """A record RESTORE DATABASE `namespace` could have taken: the namespace's
    backup, alone or a backup set's member (not one of some of its tables)."""
    return lambda b: b.namespace == namespace and not b.scope.startswith("tables: ")


def holding_table(namespace: str, table: str) -> Callable[[Backup], bool]:
    """A record RESTORE TABLE could have taken: the namespace's whole backup
    (whose tables a record does not list), or a backup of tables naming it."""
    def counts(b: Backup) -> bool:
        if b.namespace != namespace:
            return False
        tables = b.scope.removeprefix("tables: ")
        return tables == b.scope or table in tables.split(", ")
    return counts


def set_member(b: Backup) -> bool:
    """A record RESTORE ALL could have taken: a backup set's member."""
    return " (set " in b.scope


def refuse_newer_gone(cairn: Cairn, repo: Repository, what: str, chosen: str,
                      taken_at: str, as_of: str | None, counts: Callable[[Backup], bool]
                      ) -> None:
    """ALREADY_EXISTS if this server's catalog records a backup `counts` takes
    (`what`) in `repo`'s target newer than `chosen` (taken at `taken_at`; at
    or before `as_of` when given) that the target provably no longer holds: a
    RESTORE without backup_id would restore the older `chosen` in its place,
    and say it completed (someone who can delete a manifest chose which rows
    came back). A record ATTACH BACKUPS wrote counts too (until 2026-12-06
    only one a BACKUP here wrote: one forgotten and attached again, or any
    after a disaster, lost this). The record is kept: SHOW BACKUPS IN the
    target forgets it, and after that the older backup is the newest."""
    after, limit = parse_time(taken_at), None if as_of is None else parse_time(as_of)
    newer = sorted((b for b in cairn.catalog.scan(Backup)
                    if b.target == repo.uri and counts(b)
                    and parse_time(b.snapshot_at) > after
                    and (limit is None or parse_time(b.snapshot_at) <= limit)),
                   key=lambda b: b.snapshot_at, reverse=True)
    for b in newer:
        if proven_gone(repo, b.backup_id):
            raise AlreadyExists(
                f"the newest {what} this server's catalog records in target '{repo.uri}', "
                f"'{b.backup_id}' (taken {b.snapshot_at}), is no longer there (a DROP BACKUP, "
                f"another server's or one still running, or removed from outside): nothing was "
                f"restored rather than the older '{chosen}' in its place. Name that one with "
                f"backup_id = '{chosen}', or run SHOW BACKUPS IN '{repo.uri}' first (it "
                f"forgets the backups the target no longer holds)")
