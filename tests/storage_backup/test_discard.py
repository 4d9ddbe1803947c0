"""A failed first backup leaves no target behind (storage/backup/discard.py),
and a writer sharing the target the moment its skeleton goes keeps its
config and key (they are written back)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.errors import NotFound
from storage.backup import Repository

from .conftest import MakeFile
from .test_encryption import PASS, sources, store, target


class Boom(Exception):
    pass


def fail_a_backup(repo: Repository, backup_id: str, make_file: MakeFile) -> None:
    """A backup that stores an object, then fails before its manifest."""
    source = make_file(size=5000)
    with pytest.raises(Boom), repo.lock(backup_id) as lock:
        lock.add([source.sha256])
        repo.put_file(source.path, sha256=source.sha256, size=source.size, lock=lock)
        raise Boom


@pytest.mark.parametrize("passphrase", [None, PASS])
def test_a_failed_first_backup_leaves_no_target(
    root: Path, make_file: MakeFile, passphrase: str | None
) -> None:
    """It left config.json, empty locks/, tmp/, prunes/, objects/xx/ and a key file."""
    repo = Repository(target(root, "fresh"), passphrase=passphrase)
    fail_a_backup(repo, "bk-1", make_file)
    assert not (root / "fresh").exists()
    with pytest.raises(NotFound):
        Repository(target(root, "fresh")).listing()


def test_a_failed_backup_keeps_a_target_it_did_not_make(
    root: Path, make_file: MakeFile
) -> None:
    """Made by an earlier backup (since dropped): its config stays."""
    first = Repository(target(root, "old"))
    store(first, "bk-1", sources(make_file))
    first.delete_manifest("bk-1")
    first.prune()
    config = (root / "old" / "config.json").read_bytes()
    fail_a_backup(Repository(target(root, "old")), "bk-2", make_file)
    assert (root / "old" / "config.json").read_bytes() == config


def test_another_writers_lock_keeps_the_target(root: Path, make_file: MakeFile) -> None:
    failing = Repository(target(root, "shared"))
    other = Repository(target(root, "shared"))
    with other.lock("bk-other"):
        fail_a_backup(failing, "bk-1", make_file)
        assert (root / "shared" / "config.json").exists()
    assert other.listing() == []


@pytest.mark.parametrize("passphrase", [None, PASS])
def test_a_writer_that_read_the_config_before_it_went_writes_it_back(
    root: Path, make_file: MakeFile, tmp_path: Path, passphrase: str | None
) -> None:
    """Another server opened the target (its config, and the key the failed
    backup wrote: the same passphrase) a moment before the failed backup's
    clean-up took them: its lock comes after, and it puts them back, so its
    backup is not written into a target without its config or key."""
    failing = Repository(target(root, "shared"), passphrase=passphrase)
    other = Repository(target(root, "shared"), passphrase=passphrase)
    failing.writer_keys()  # the config (and key) written
    other.writer_keys()  # read: the same config, the same key
    fail_a_backup(failing, "bk-1", make_file)
    assert not (root / "shared").exists()
    files = sources(make_file)
    written = store(other, "bk-2", files)
    reader = Repository(target(root, "shared"), passphrase=passphrase)
    assert [m["backup_id"] for m in reader.listing()] == ["bk-2"]
    assert reader.verify("bk-2", contents=False).is_valid
    for f, src in zip(written["tables"][0]["files"], files, strict=True):
        out = tmp_path / "out"
        reader.read_object_to(f["oid"], str(out), f["size"], sha256=f.get("sha256"))
        assert out.read_bytes() == src.data
