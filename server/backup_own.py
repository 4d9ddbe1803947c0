"""Whether a manifest under an interrupted BACKUP job's id is the job's own.

Start-up lists the manifest a crashed backup job left under its id (its
server died after the manifest landed, before the job recorded it), and a
backup set whose every member landed. Anyone who can write the target can
put a manifest there (the id is in system.jobs and names the job's lock).
Checked by namespace and `snapshot_at >= the job's created_at` (round 24),
a copy of an older backup re-sealed with the id and any later snapshot_at
was listed as the job's backup: older rows under a newer time, taken by a
RESTORE of the newest. A set was listed with no check at all. And the wall
clock stepped back between the job's creation and its snapshot removed a
real backup. Now the job's row records what its own manifests will say once
its snapshot is taken (`cleanup["taken"]`, never shown: not in system.jobs,
nor in the target until the manifest is there), and only a manifest saying
exactly that is its own."""

from __future__ import annotations

from typing import Any

from catalog import Job
from catalog.errors import BackupInvalid, NotFound
from storage.backup import Repository
from storage.backup.recorded import scope_text
from storage.backup.schema import Header, Scope, load_header
from storage.backup.selection import parse_time as when

from .jobs import JobContext

TAKEN = "taken"
UNREAD = "unread"  # its lost job process's manifest could not be read back (backup_run.py)


def taken(ctx: JobContext, snapshot_at: str, scope: Scope | None,
          namespace: str | None = None) -> None:
    """On the job's row, before anything is stored: the namespace (a set's
    members: None, each its own), snapshot instant and scope of the
    manifests it will write. A put: a disk that refuses it fails the job
    before its target is touched."""
    ctx.set(cleanup={**ctx.job.cleanup, TAKEN: {
        "namespace": namespace, "snapshot_at": snapshot_at, "scope": scope_text(scope)}})


def its_own(job: Job, h: Header, namespace: str | None = None) -> bool:
    """Whether manifest header `h`, under job `job`'s id (or one of its set's
    member ids, `namespace` that member's), is the job's own: of its
    namespace, with exactly the instant and scope its row recorded. A row
    that recorded none (written before this check): of its namespace, taken
    at or after the job's creation, as round 24 checked."""
    t: Any = job.cleanup.get(TAKEN)
    t = t if isinstance(t, dict) else None
    ns = namespace or (t or {}).get("namespace") or job.namespace
    if ns is not None and h.namespace != ns:
        return False
    if t is None:
        return bool(when(h.snapshot_at) >= when(job.created_at))
    return (h.snapshot_at, scope_text(h.scope)) == (t.get("snapshot_at"), t.get("scope"))


def landed_own(job: Job, repo: Repository, backup_id: str,
               namespace: str | None = None) -> dict[str, Any] | None:
    """The header of the manifest `backup_id` in `repo` when it is job
    `job`'s own; None when it is absent, damaged or not its own. A target
    that cannot be read now raises (the clean-up stays pending): taken for
    none, a whole set's members went."""
    try:
        doc = repo.read_manifest(backup_id, require_body=False)
        return doc if its_own(job, load_header(doc), namespace) else None
    except (NotFound, BackupInvalid):
        return None
