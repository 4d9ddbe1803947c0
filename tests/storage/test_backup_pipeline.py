"""A backup's copies and its disk waits overlap (storage/backup/writer.py
`store_all`): a put hands its copy slot on once its bytes are written, so the
next file is copied while the disk takes the last one's fsync, and every
object is still durable, checked and published before the manifest."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from storage.backup import Repository, objects, resolve_target, write_backup
from storage.engine import Engine
from tests.proof.test_ddl_race import Quiet

from .conftest import col

FILES = 3


@pytest.fixture
def app(engine: Engine) -> Engine:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                col("data", "BYTES")])
    for k in range(FILES):
        ids = pa.array(range(k * 50, (k + 1) * 50), pa.int64())
        payload = [os.urandom(2000) if k % 2 else bytes([k]) * 2000 for _ in range(50)]
        engine.insert_arrow("app", "t", pa.table({"id": ids, "data": payload}))
        engine.flush_table("app", "t")
    return engine


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_the_next_copy_runs_while_the_disk_syncs(app: Engine, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 compression: str) -> None:
    """Two copy slots, three files: the first two puts wait in their fsync (held
    until the third copy has started); the third must start meanwhile. One put
    at a time per slot, fsync included, never gets there."""
    gate = threading.Event()  # opens the held fsyncs
    third = threading.Event()  # the third copy started
    copies: list[int] = []
    held: list[int] = []
    lock = threading.Lock()
    real_fsync, real_copy = os.fsync, objects.copy_file
    real_encode = objects.ObjectStore._upload_encoded

    def copying() -> None:
        with lock:
            copies.append(1)
            if len(copies) == FILES:
                third.set()

    def copy_file(src: int, dst: int, *args: Any, **kw: Any) -> tuple[int, str]:
        copying()
        return real_copy(src, dst, *args, **kw)

    def upload_encoded(self: Any, *args: Any, **kw: Any) -> Any:
        copying()
        return real_encode(self, *args, **kw)

    def fsync(fd: int) -> None:
        if threading.current_thread().name.startswith("cairn-transfer"):
            with lock:
                hold = len(held) < 2
                held.append(fd)
            if hold:
                assert gate.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(objects, "copy_file", copy_file)
    monkeypatch.setattr(objects.ObjectStore, "_upload_encoded", upload_encoded)
    monkeypatch.setattr(os, "fsync", fsync)
    repo = Repository(resolve_target("t", [str(tmp_path / "b")], {}), compression=compression)
    out: list[Any] = []

    def run() -> None:
        with app.snapshot({"app": None}) as snap:
            (image,) = snap.namespaces
            out.append(write_backup(repo, image, "bk-1", snapshot_at=snap.snapshot_at,
                                    label=None, work=Quiet(), workers=2))

    runner = threading.Thread(target=run)
    runner.start()
    try:
        started = third.wait(10)
    finally:
        gate.set()
        runner.join(30)
    assert started, "the third copy waited for the first two fsyncs"
    assert not runner.is_alive() and len(out) == 1
    assert len(held) >= FILES  # every object was synced (the test's holds released)
    assert len(out[0].tables[0].files) == FILES
    assert repo.verify("bk-1").is_valid
    assert repo.list_locks() == []
