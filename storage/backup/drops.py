"""A dropped backup's steps in the target (DROP BACKUP, keep_last), each one
call of a job process (storage/jobproc.py): reading manifests, listing
folders and checking lock files is Python on a GIL, and on the server's it
kept the statements waiting (docs/performance.md, "The event loop's GIL
beside a BACKUP"). The server keeps the job's row and the catalog between
them (server/backups.py `drop_one`)."""

from __future__ import annotations

from ..work import Work
from .pruning import prune_dropped
from .repository import Repository
from .schema import load_header


def drop_plan(repo: Repository, backup_id: str) -> tuple[str, set[str]]:
    """What dropping `backup_id` takes: its namespace and its objects, from its
    public header (an encrypted one needs no key). NotFound if it is not
    there; BackupInvalid if it is damaged, or if a lock or prune marker is
    (a prune would refuse: nothing is removed rather than half)."""
    m = repo.read_manifest(backup_id, require_body=False)
    repo.check_prunable()
    return m["namespace"], {o.oid for o in load_header(m).objects}


def drop_and_prune(repo: Repository, backup_id: str, candidates: set[str], work: Work) -> int:
    """Remove the manifest, then every object of `candidates` nothing else
    uses (`prune_dropped`): bytes freed."""
    repo.delete_manifest(backup_id)
    return prune_dropped(repo, backup_id, candidates, work)
