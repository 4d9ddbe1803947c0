"""The backup repository layer: content-addressed objects plus one manifest per
backup, on a local directory or S3 (see docs/backup-format.md)."""

from __future__ import annotations

from .locks import BackupLock
from .manifest import FORMAT_VERSION
from .objects import PutResult
from .repository import Repository
from .targets import Target, resolve_target
from .verify import Progress, VerifyReport

__all__ = [
    "FORMAT_VERSION",
    "BackupLock",
    "Progress",
    "PutResult",
    "Repository",
    "Target",
    "VerifyReport",
    "resolve_target",
]
