"""A statement's target -> an open backup repository (roots and named targets applied)."""

from __future__ import annotations

from storage.backup import Repository, open_repository, resolve_target

from .state import Cairn


def repository(cairn: Cairn, target: str, passphrase: str | None = None,
               compression: str = "zstd") -> Repository:
    cfg = cairn.config
    return open_repository(resolve_target(target, cfg.backup_roots, cfg.backup.targets,
                                          str(cfg.data_dir)),
                           passphrase=passphrase, compression=compression,
                           scratch_dir=str(cairn.data_dir / "tmp"))
