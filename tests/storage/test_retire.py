"""A retired data file whose table folder another delete already removed
(two deletes of one table's last files at once: a restore's, a flush's, a
compaction's) is gone, which is what was asked: no WARNING with a traceback."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from catalog.ids import new_id
from storage.files import FileStore


def test_a_file_whose_folder_is_already_gone_is_deleted_quietly(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = FileStore(tmp_path / "data")
    table = new_id("tbl")
    rels = [f"files/{table}/{new_id('f')}.parquet" for _ in range(2)]
    for rel in rels:
        files.abs(rel).parent.mkdir(parents=True, exist_ok=True)
        files.abs(rel).write_bytes(b"PAR1")
    shutil.rmtree(files.abs(rels[0]).parent)  # the other delete emptied and removed it
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        files.retire(rels)
    assert not files.abs(rels[0]).parent.exists()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_the_last_file_takes_its_folder(tmp_path: Path) -> None:
    files = FileStore(tmp_path / "data")
    rel = f"files/{new_id('tbl')}/{new_id('f')}.parquet"
    files.abs(rel).parent.mkdir(parents=True)
    files.abs(rel).write_bytes(b"PAR1")
    files.retire([rel])
    assert not files.abs(rel).parent.exists() and files.files_dir.exists()
