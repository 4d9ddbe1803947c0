"""Fixtures for the backup repository: a backup root, a repository in it, and
source files with known content."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.backup import Repository, resolve_target


@dataclass(frozen=True)
class Source:
    path: str
    sha256: str
    size: int
    data: bytes


MakeFile = Callable[..., Source]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def repo(root: Path) -> Repository:
    """A repository writing format 1 exactly (no compression, no encryption)."""
    return Repository(resolve_target("main", [str(root)], {}), compression="none")


@pytest.fixture
def make_file(tmp_path: Path) -> MakeFile:
    """`make_file(size=…)` or `make_file(data=…)`: a source file outside the roots."""
    src = tmp_path / "src"
    src.mkdir()
    counter = iter(range(1_000_000))

    def make(size: int = 1000, data: bytes | None = None, name: str | None = None) -> Source:
        content = os.urandom(size) if data is None else data
        path = src / (name or f"f{next(counter)}.parquet")
        path.write_bytes(content)
        return Source(str(path), hashlib.sha256(content).hexdigest(), len(content), content)

    return make


def tmp_files(repo: Repository) -> list[str]:
    """Files left in the repository's tmp/ (there must be none after any failure)."""
    tmp = Path(repo.target.base) / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def object_file(repo: Repository, oid: str) -> Path:
    return Path(repo.target.base) / "objects" / oid[:2] / oid


def manifest_doc(
    backup_id: str, sources: list[Source], namespace: str = "app"
) -> dict[str, object]:
    """A minimal manifest for `sources`, all in one table."""
    return {
        "backup_id": backup_id,
        "namespace": namespace,
        "snapshot_at": "2026-01-01T00:00:00.000Z",
        "label": "nightly",
        "tables": [
            {
                "name": "events",
                "table_type": "SHARED",
                "schema_versions": [{"version": 1, "columns": [{"name": "id", "type": "BIGINT"}]}],
                "rows": 10 * len(sources),
                "files": [
                    {"path": f"part-{i}.parquet", "oid": s.sha256, "size": s.size}
                    for i, s in enumerate(sources)
                ],
            }
        ],
    }
