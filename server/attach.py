"""ATTACH BACKUPS FROM 'target': adopt a target's backups after a disaster.

A fresh server can list a target (SHOW BACKUPS IN '…'), but VERIFY BACKUP, SHOW
BACKUP and RESTORE without IN look the backup up in the server's own catalog.
ATTACH reads every manifest of the target through the repository's checked
decoder and records each one that reads in the catalog (`system.backups`). A
damaged manifest is reported, never recorded; a backup id the catalog already
holds for another target is reported as a conflict and left as it is. It reads
manifests only: VERIFY BACKUP rereads the objects."""

from __future__ import annotations

import time
from typing import Any

from catalog import Backup
from catalog.errors import CairnError
from sqlgrammar import ast

from .backups import summary
from .dispatch import Routes
from .metrics import dated_ahead
from .repos import repository
from .result import Result
from .state import Cairn, Session

routes = Routes()

COLUMNS = [("backup_id", "TEXT"), ("namespace", "TEXT"), ("created_at", "TIMESTAMP"),
           ("encrypted", "BOOLEAN"), ("status", "TEXT"), ("error", "TEXT")]


def attach(cairn: Cairn, target: str) -> list[dict[str, Any]]:
    """One row per manifest of the target, newest first, damaged ones last.
    status: attached | already attached | conflict | damaged | being written (a
    member of a set still being written: adopted then, it stayed listed, and
    could not be dropped, once the set failed and its manifests went)."""
    repo = repository(cairn, target)
    repo.require_exists()
    writing = {lock["backup_id"] for lock in repo.list_locks()}
    rows = []
    for header in repo.list_manifests():
        backup_id = header["backup_id"]
        row: dict[str, Any] = {"backup_id": backup_id, "namespace": header.get("namespace"),
                               "created_at": header.get("created_at"),
                               "encrypted": bool(header.get("encrypted")), "error": None}
        rows.append(row)
        if "error" in header:
            row.update(status="damaged", error=header["error"])
            continue
        scope = header.get("scope") or {}
        if scope.get("set_id") in writing:  # a set landing member by member
            row.update(status="being written", error=f"backup set '{scope['set_id']}' still "
                       "holds its lock in the target: attach again once it is done")
            continue
        if not header.get("encrypted"):
            try:  # the whole manifest, tables and all (an encrypted body needs its key)
                repo.read_manifest(backup_id)
            except CairnError as exc:
                row.update(status="damaged", error=exc.message)
                continue
        known = cairn.catalog.get(Backup, backup_id)
        if known is not None and known.target != repo.uri:
            row.update(status="conflict",
                       error=f"the catalog already records this backup in target '{known.target}'")
            continue
        cairn.catalog.put(Backup(**summary(header, repo.uri),
                                 job_id=None if known is None else known.job_id))
        row["status"] = "attached" if known is None else "already attached"
        row["error"] = _ahead(header.get("created_at"))
    return rows


def _ahead(created_at: Any) -> str | None:
    """Why a backup dated past this server's clock (beyond 5 min) is
    flagged: it is recorded, but makes no namespace's backup age fresh."""
    if not isinstance(created_at, str) or not dated_ahead(created_at, time.time()):
        return None
    return (f"dated {created_at}, later than this server's clock: not counted as a backup "
            "of its namespace by cairn_backup_age_seconds until then")


@routes.handles(ast.AttachBackups, role="admin")
async def attach_backups(cairn: Cairn, session: Session, stmt: ast.AttachBackups) -> Result:
    rows = await cairn.run_target(stmt.target, attach, cairn, stmt.target)
    good = sum(r["status"] in ("attached", "already attached") for r in rows)
    return Result.of_rows(COLUMNS, rows, message=(
        f"{good} of {len(rows)} backups in target '{stmt.target}' are in the catalog"))
