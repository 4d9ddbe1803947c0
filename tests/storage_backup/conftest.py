"""Fixtures for the backup repository: a backup root, a repository in it, and
source files with known content."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage.backup import PutResult, Repository, copier, resolve_target


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


COLUMNS = [
    {"name": "id", "type": "BIGINT", "params": [], "not_null": True, "primary_key": True,
     "has_default": False, "default": None, "system": False, "since": 1},
    {"name": "_updated", "type": "TIMESTAMP", "params": [], "not_null": True,
     "primary_key": False, "has_default": False, "default": None, "system": True, "since": 1},
    {"name": "_deleted", "type": "BOOLEAN", "params": [], "not_null": True,
     "primary_key": False, "has_default": False, "default": None, "system": True, "since": 1},
]


def table_doc(name: str, sources: list[Source], first_seq: int = 1) -> dict[str, Any]:
    """A whole table entry (as BACKUP writes one) holding `sources`, 10 rows each."""
    files = [
        {"oid": s.sha256, "size": s.size, "rows": 10, "schema_version": 1, "user_id": None,
         "min_seq": first_seq + 10 * i, "max_seq": first_seq + 10 * i + 9, "source": "parquet",
         "key_range": {}}
        for i, s in enumerate(sources)
    ]
    return {
        "name": name, "table_type": "shared", "schema_version": 1, "primary_key": ["id"],
        "options": {}, "created_at": "2026-01-01T00:00:00.000Z",
        "schemas": [{"version": 1, "columns": COLUMNS, "created_at": "2026-01-01T00:00:00.000Z"}],
        "files": files, "rows": 10 * len(sources),
        "max_seq": max((f["max_seq"] for f in files), default=0),
    }


def stored_as(table: dict[str, Any], puts: list[PutResult]) -> dict[str, Any]:
    """`table` with its files' oids as `puts` stored them (with `sha256` when encoded)."""
    for f, put in zip(table["files"], puts, strict=True):
        f["oid"] = put.oid
        if put.oid != put.sha256:
            f["sha256"] = put.sha256
    return table


def backup_doc(
    backup_id: str, tables: list[dict[str, Any]], namespace: str = "app"
) -> dict[str, Any]:
    """A manifest as BACKUP hands it to the repository."""
    return {
        "backup_id": backup_id,
        "namespace": namespace,
        "snapshot_at": "2026-01-01T00:00:00.000Z",
        "label": "nightly",
        "namespace_record": {"created_at": "2026-01-01T00:00:00.000Z", "options": {}},
        "max_seq": max((t["max_seq"] for t in tables), default=0),
        "tables": tables,
    }


def manifest_doc(
    backup_id: str, sources: list[Source], namespace: str = "app"
) -> dict[str, Any]:
    """A minimal manifest for `sources`, all in one table."""
    return backup_doc(backup_id, [table_doc("events", sources)], namespace)


def kill_copiers_at_first_step(killed: list[int]) -> Callable[[int], None]:
    """A progress step that SIGKILLs every busy copier process the first time
    it is called, noting their pids in `killed`."""
    def step(_: int) -> None:
        if not killed:
            for pid in copier.busy_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return step
