"""BACKUP, RESTORE, SHOW BACKUP(S), VERIFY and DROP BACKUP, schedules."""

from __future__ import annotations

from typing import Any

HANDLERS: dict[type, Any] = {}


def register_cleanups(cairn: Any) -> None:
    """Start-up cleanup of interrupted backup/restore jobs (filled by the backup issue)."""


async def schedule_loop(cairn: Any) -> None:
    """Runs scheduled backups (filled by the schedules issue)."""
