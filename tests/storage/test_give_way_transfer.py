"""BACKUP and RESTORE transfers call `Work.give_way` between chunks and move
nothing while it holds them (the server's version waits while statements
run: tests/server/test_give_way.py). Events, not timings, decide each check."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from storage.backup import Repository, resolve_target, write_backup
from storage.backup.schema import FileEntry
from storage.engine import Engine
from storage.install import Restore

from .conftest import col

FILES = 3
ROWS = 3000  # 1000 random bytes a row: ~3 MB a file, three 1 MiB chunks or more


class Gate:
    """A Work whose give_way parks the transfer until `open_gate()`."""

    cancelled = False
    pause_requested = False

    def __init__(self, closed: bool) -> None:
        self.calls = 0
        self.bytes_done = 0
        self._open = threading.Event()
        if not closed:
            self._open.set()
        self._lock = threading.Lock()

    def open_gate(self) -> None:
        self._open.set()

    def check_cancelled(self) -> None:
        pass

    def progress(self, *, bytes_done: int | None = None, **_: Any) -> None:
        if bytes_done is not None:
            with self._lock:
                self.bytes_done = max(self.bytes_done, bytes_done)

    def fault(self, point: str, **info: Any) -> None:
        pass

    def give_way(self) -> None:
        with self._lock:
            self.calls += 1
        self._open.wait(60)


@pytest.fixture
def app(engine: Engine) -> Engine:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                col("data", "BYTES")])
    for k in range(FILES):
        ids = pa.array(range(k * ROWS, (k + 1) * ROWS), pa.int64())
        engine.insert_arrow("app", "t", pa.table({
            "id": ids, "data": [os.urandom(1000) for _ in range(ROWS)]}))
        engine.flush_table("app", "t")
    return engine


def backup(engine: Engine, repo: Repository, work: Gate) -> Any:
    with engine.snapshot({"app": None}) as snap:
        (image,) = snap.namespaces
        return write_backup(repo, image, "bk-1", snapshot_at=snap.snapshot_at, label=None,
                            work=work, workers=2)


def wait_for(check: Any) -> None:
    for _ in range(3000):
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("never happened")


def test_the_backup_moves_nothing_while_held(app: Engine, tmp_path: Path) -> None:
    repo = Repository(resolve_target("t", [str(tmp_path / "b")], {}), compression="none")
    work = Gate(closed=True)
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(backup(app, repo, work)))
    worker.start()
    try:
        wait_for(lambda: work.calls >= 2)  # both workers parked after a chunk
        held_at = work.bytes_done
        assert worker.is_alive()
        worker.join(0.3)
        assert worker.is_alive() and not done
        assert work.bytes_done == held_at  # nothing moved while held
    finally:
        work.open_gate()
        worker.join(60)
    assert done and repo.verify("bk-1").is_valid
    assert held_at < done[0].totals.bytes
    # Asked between chunks: at least once per chunk of every file.
    assert work.calls >= FILES * 2


def test_the_restore_gives_way_between_chunks(app: Engine, tmp_path: Path) -> None:
    repo = Repository(resolve_target("t", [str(tmp_path / "b")], {}), compression="none")
    m = backup(app, repo, Gate(closed=False))
    work = Gate(closed=False)

    def fetch(f: FileEntry, dest: Path, on_bytes: Any) -> None:
        repo.read_object_to(f.oid, str(dest), f.size, on_bytes=on_bytes, sha256=f.sha256)

    app.restore(Restore(m, "copy", workers=2), fetch, work)
    assert work.calls >= FILES * 2
