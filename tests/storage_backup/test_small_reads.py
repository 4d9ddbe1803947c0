"""Small files (locks, prune markers, manifests) read while another server
replaces or removes them: on object storage the GET after a HEAD then fails
with an error that is not "not found" (moto: "Failed to flush response
stream"). read_small looks again: gone is absent, replaced is read again, and
a file that keeps failing while it stays put is an error."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from catalog.errors import BackupInvalid
from storage.backup import Target
from storage.backup.atomic import read_small

from .faults import FaultyHandler


class Racing(FaultyHandler):
    """Each open of a file fails while `failures` lasts, after `change` ran."""

    def __init__(self, failures: int, change: Any) -> None:
        super().__init__()
        self.failures = failures
        self.change = change
        self.opens = 0

    def open_input_stream(self, path: str) -> pa.NativeFile:
        self.opens += 1
        if self.failures > 0:
            self.failures -= 1
            self.change(path)
            raise OSError(errno.EIO, "AWS Error NETWORK_CONNECTION during GetObject operation: "
                                     "Failed to flush response stream (eof: 0, bad: 1)")
        return super().open_input_stream(path)


def target(tmp_path: Path, handler: Racing, kind: str = "s3") -> tuple[Target, str]:
    path = tmp_path / "locks" / "bk-1.json"
    path.parent.mkdir()
    path.write_bytes(b'{"old": 1}')
    return Target(fs=pafs.PyFileSystem(handler), base=str(tmp_path), uri="s3://b/p",
                  kind=kind), str(path)  # type: ignore[arg-type]


def test_removed_while_read_is_absent(tmp_path: Path) -> None:
    handler = Racing(1, lambda p: Path(p).unlink())
    t, path = target(tmp_path, handler)
    assert read_small(t, path) is None


def test_replaced_while_read_is_read_again(tmp_path: Path) -> None:
    handler = Racing(1, lambda p: Path(p).write_bytes(b'{"new": 2}'))
    t, path = target(tmp_path, handler)
    assert read_small(t, path) == b'{"new": 2}' and handler.opens == 2


def test_a_file_that_keeps_failing_is_an_error(tmp_path: Path) -> None:
    handler = Racing(10, lambda p: None)
    t, path = target(tmp_path, handler)
    with pytest.raises(BackupInvalid, match=r"cannot read bk-1.json .*Input/output error"):
        read_small(t, path)
    assert handler.opens == 3


def test_a_local_file_is_not_read_twice(tmp_path: Path) -> None:
    handler = Racing(1, lambda p: None)
    t, path = target(tmp_path, handler, kind="local")
    with pytest.raises(BackupInvalid):
        read_small(t, path)
    assert handler.opens == 1
