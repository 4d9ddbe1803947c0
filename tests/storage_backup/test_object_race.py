"""Two servers store the same content into one target at the same moment: the
object is stored once, and only the writer that stored it says so
(`written`, which a backup's `bytes_written` adds up: "new bytes this run
stored"). Both looked, found nothing, and renamed over each other, each
claiming the bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from storage.backup import Repository, objects, resolve_target

from .conftest import MakeFile, object_file, tmp_files


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_only_the_writer_that_stored_an_object_counts_it(
        root: Path, make_file: MakeFile, compression: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a = Repository(resolve_target("main", [str(root)], {}), compression=compression)
    b = Repository(resolve_target("main", [str(root)], {}), compression=compression)
    src = make_file(data=b"the same table file " * 5000 + os.urandom(64))
    a.init()
    real = objects.ObjectStore.size_of
    theirs: list[Any] = []

    def racing(self: objects.ObjectStore, oid: str) -> int | None:
        """A's look before it publishes finds nothing; B stores the object then."""
        found = real(self, oid)
        tmp = root / "main" / "tmp"
        if not theirs and found is None and tmp.is_dir() and any(tmp.iterdir()):
            theirs.append(None)
            theirs[0] = b.put_file(src.path)
        return found

    monkeypatch.setattr(objects.ObjectStore, "size_of", racing)
    mine = a.put_file(src.path)
    monkeypatch.undo()
    [other] = theirs
    assert other.written and mine.oid == other.oid
    assert not mine.written, "both writers claimed the object's bytes"
    assert a.list_objects() == {mine.oid: mine.size}
    assert object_file(a, mine.oid).stat().st_nlink == 1
    assert tmp_files(a) == []
    again = a.put_file(src.path)  # stored whole: found, not stored again
    assert not again.written and again.oid == mine.oid
