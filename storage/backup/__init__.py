"""The backup repository layer: content-addressed objects plus one manifest per
backup, on a local directory, S3 or in an archive file (see docs/backup-format.md)."""

from __future__ import annotations

from .archive import ArchiveRepository, open_repository
from .crypto import NotEncrypted, PassphraseError
from .locks import BackupLock
from .manifest import FORMAT_VERSION
from .objects import PutResult
from .repository import Repository
from .schema import Header, Manifest
from .targets import Target, resolve_target
from .verify import Progress, VerifyReport
from .writer import write_backup

__all__ = [
    "FORMAT_VERSION",
    "ArchiveRepository",
    "BackupLock",
    "Header",
    "Manifest",
    "NotEncrypted",
    "PassphraseError",
    "Progress",
    "PutResult",
    "Repository",
    "Target",
    "VerifyReport",
    "open_repository",
    "resolve_target",
    "write_backup",
]
