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

from catalog.errors import BackupInvalid, InvalidArgument, Unavailable
from storage.backup import Repository, Target, resolve_target
from storage.backup.atomic import SMALL_MAX, TooLarge, read_small, write_small

from .conftest import MakeFile
from .faults import FaultyHandler
from .test_manifest import backed_up


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
    with pytest.raises(Unavailable, match=r"'s3://b/p' cannot be reached: .*NETWORK_CONNECTION"):
        read_small(t, path)  # not a damaged backup: the store did not answer
    assert handler.opens == 3


def test_a_local_file_is_not_read_twice(tmp_path: Path) -> None:
    handler = Racing(1, lambda p: None)
    t, path = target(tmp_path, handler, kind="local")
    with pytest.raises(Unavailable):
        read_small(t, path)
    assert handler.opens == 1


# --- the size limit: a target is hostile, and a sparse file costs no disk ---------------


def test_a_small_file_is_read_up_to_its_limit_and_not_past_it(tmp_path: Path) -> None:
    handler = Racing(0, None)
    t, path = target(tmp_path, handler)
    Path(path).write_bytes(b"x" * 100)
    assert read_small(t, path, limit=100) == b"x" * 100
    Path(path).write_bytes(b"x" * 101)
    with pytest.raises(TooLarge, match="'bk-1.json' in backup target 's3://b/p' is over 100 bytes"):
        read_small(t, path, limit=100)
    assert handler.opens == 2  # refused at once: a retry would read it all again


def test_a_huge_sparse_manifest_is_listed_as_damaged_and_not_read_whole(
        repo: Repository, make_file: MakeFile) -> None:
    """A manifest of SMALL_MAX + 1 bytes (sparse: no disk) is damaged, listed
    with its error; the newest being damaged, RESTORE's choice refuses."""
    backed_up(repo, make_file, "bk-1")
    huge = Path(repo.target.base) / "manifests" / "bk-2.json"
    with open(huge, "wb") as f:
        f.truncate(SMALL_MAX + 1)
    listed = repo.list_manifests()
    assert [m["backup_id"] for m in listed] == ["bk-1", "bk-2"]
    assert "is over 67108864 bytes" in listed[1]["error"]
    with pytest.raises(BackupInvalid, match="bk-2"):
        repo.choose_backup("app")


@pytest.mark.parametrize("what", ["locks/bk-9.json", "config.json"])
def test_a_huge_lock_or_config_is_refused(repo: Repository, make_file: MakeFile,
                                          what: str) -> None:
    backed_up(repo, make_file)
    victim = Path(repo.target.base) / what
    victim.parent.mkdir(exist_ok=True)
    with open(victim, "wb") as f:
        f.truncate(SMALL_MAX + 1)
    call = Repository(repo.target).prune if what.startswith("locks") else \
        Repository(repo.target).list_manifests
    with pytest.raises(BackupInvalid, match="is over 67108864 bytes"):
        call()


def test_nothing_over_the_limit_is_written(tmp_path: Path) -> None:
    t = resolve_target("t", [str(tmp_path)], {})
    path = f"{t.base}/manifests/bk-1.json"
    with pytest.raises(InvalidArgument, match="'bk-1.json' would be 11 bytes, over the 10"):
        write_small(t, path, b"x" * 11, limit=10)
    assert not Path(path).exists()
    write_small(t, path, b"x" * 10, limit=10)
    assert read_small(t, path, limit=10) == b"x" * 10
