"""`store` ablation (bench/ablations/sitecustomize.py): a BACKUP's
`write_backup`, run in the job process, replaced by a sleep (0.1 s, or
CAIRN_ABLATE_STORE_SECONDS) that stores nothing and returns a manifest-like
answer run_backup can record."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace
from typing import Any


def write_backup(repo: Any, image: Any, backup_id: str, *, snapshot_at: str,
                 label: str | None = None, **_: Any) -> SimpleNamespace:
    time.sleep(float(os.environ.get("CAIRN_ABLATE_STORE_SECONDS", "0.1")))
    totals = SimpleNamespace(tables=len(image.tables), live_rows=0, rows=0, files=0, bytes=0,
                             bytes_written=0)
    return SimpleNamespace(backup_id=backup_id, namespace=image.namespace, created_at=snapshot_at,
                           snapshot_at=snapshot_at, label=label, encrypted=False, scope=None,
                           totals=totals)
