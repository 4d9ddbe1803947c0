"""Archives at the repository level: deterministic packing, reading in any order
without unpacking, refusing hostile members, and cleaning up after itself."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from catalog.errors import AlreadyExists, BackupInvalid
from storage.backup import (
    ArchiveRepository,
    Repository,
    open_repository,
    resolve_target,
)
from storage.backup.tarball import pack

from .conftest import MakeFile, Source
from .test_encryption import store


def archive_repo(root: Path, name: str, scratch: Path, **kw: Any) -> ArchiveRepository:
    repo = open_repository(resolve_target(name, [str(root)], {}), scratch_dir=str(scratch), **kw)
    assert isinstance(repo, ArchiveRepository)
    return repo


def files(make_file: MakeFile) -> list[Source]:
    shared = os.urandom(3000)
    return [make_file(size=5000), make_file(data=b"text " * 5000), make_file(data=shared),
            make_file(data=b""), make_file(data=shared, name="again.parquet")]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def test_packing_is_deterministic(root: Path, make_file: MakeFile, tmp_path: Path) -> None:
    repo = Repository(resolve_target("plain", [str(root)], {}))
    store(repo, "bk-1", files(make_file))
    with repo.lock("bk-running"):  # locks and tmp/ never go into an archive
        for name in ("a.tar", "b.tar", "c.tar.zst", "d.tar.zst"):
            pack(repo.target.base, str(tmp_path / name))
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    assert (tmp_path / "c.tar.zst").read_bytes() == (tmp_path / "d.tar.zst").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == sorted(names) and names[0] == "config.json"
    assert not any(n.startswith(("locks/", "tmp/")) for n in names)
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode, i.type) for i in infos} == {
        (0, 0, 0, "", "", 0o644, tarfile.REGTYPE)}
    with pytest.raises(AlreadyExists):
        pack(repo.target.base, str(tmp_path / "a.tar"))
    assert sorted(os.listdir(tmp_path)).count("a.tar") == 1
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.parametrize("name", ["x.tar", "x.tar.zst"])
@pytest.mark.parametrize("passphrase", [None, "archive pass"])
def test_write_then_read_in_any_order(
    root: Path, make_file: MakeFile, scratch: Path, tmp_path: Path, name: str,
    passphrase: str | None,
) -> None:
    sources = files(make_file)
    writer = archive_repo(root, name, scratch, passphrase=passphrase)
    written = store(writer, "bk-1", sources)
    assert (root / name).is_file() and os.listdir(scratch) == []  # staging gone
    with pytest.raises(AlreadyExists):
        archive_repo(root, name, scratch).lock("bk-2")

    reader = archive_repo(root, name, scratch, passphrase=passphrase)
    assert reader.read_manifest("bk-1") == written
    assert [m["backup_id"] for m in reader.list_manifests()] == ["bk-1"]
    assert reader.verify("bk-1", contents=False).is_valid
    entries = [f for t in written["tables"] for f in t["files"]]
    order = [*reversed(entries), entries[0]]  # out of archive order, then one again
    for i, (f, src) in enumerate(zip(order, [*reversed(sources), sources[0]], strict=True)):
        out = tmp_path / f"out{i}"
        reader.read_object_to(f["oid"], str(out), f["size"], sha256=f.get("sha256"))
        assert out.read_bytes() == src.data
        if i == len(entries) - 1:  # each file read once, as a restore does: nothing left
            assert os.listdir(scratch) == []
    reader.close()
    assert os.listdir(scratch) == []

    # Dropping the backup removes the archive.
    dropper = archive_repo(root, name, scratch)
    header = dropper.read_manifest("bk-1", require_body=False)
    dropper.delete_manifest("bk-1")
    assert dropper.prune(candidates=[o["oid"] for o in header["objects"]]) > 0
    assert not (root / name).exists()


def test_a_failed_backup_leaves_no_archive_and_no_staging(
    root: Path, make_file: MakeFile, scratch: Path
) -> None:
    repo = archive_repo(root, "f.tar", scratch)
    src = make_file(size=100)
    with pytest.raises(RuntimeError), repo.lock("bk-1") as lock:
        repo.put_file(src.path, src.sha256, src.size, lock=lock)
        raise RuntimeError("the backup failed")
    assert not (root / "f.tar").exists() and os.listdir(scratch) == []


def hostile(path: Path, members: list[tarfile.TarInfo], zst: bool = False) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    data = buf.getvalue()
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if zst else data)


def member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1, **kw: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(info, k, v)
    return info


@pytest.mark.parametrize(("bad", "match"), [
    (member("/etc/passwd"), "unsafe"),
    (member("objects/../../x"), "unsafe"),
    (member("objects/ab/link", tarfile.SYMTYPE, linkname="/etc/passwd"), "not a regular"),
    (member("objects/ab/hard", tarfile.LNKTYPE, linkname="config.json"), "not a regular"),
    (member("dev", tarfile.CHRTYPE), "not a regular"),
    (member("fifo", tarfile.FIFOTYPE), "not a regular"),
    (member("evil.sh"), "unexpected"),
    (member("objects/zz/" + "ab" * 32), "unexpected"),
])
@pytest.mark.parametrize("zst", [False, True])
def test_hostile_members_are_refused(
    root: Path, scratch: Path, bad: tarfile.TarInfo, match: str, zst: bool
) -> None:
    name = "h.tar.zst" if zst else "h.tar"
    root.mkdir(exist_ok=True)
    hostile(root / name, [member("config.json"), bad], zst)
    repo = archive_repo(root, name, scratch)
    with pytest.raises(BackupInvalid, match=match):
        repo.list_manifests()
    assert os.listdir(scratch) == []


def test_out_of_order_and_damaged_archives(root: Path, scratch: Path) -> None:
    root.mkdir(exist_ok=True)
    hostile(root / "o.tar", [member("manifests/b.json"), member("config.json")])
    with pytest.raises(BackupInvalid, match="sorted"):
        archive_repo(root, "o.tar", scratch).list_manifests()
    (root / "g.tar.zst").write_bytes(b"\x28\xb5\x2f\xfd garbage")
    with pytest.raises(BackupInvalid, match="corrupt"):
        archive_repo(root, "g.tar.zst", scratch).list_manifests()


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME])
@pytest.mark.parametrize("zst", [False, True])
@pytest.mark.parametrize("first", [True, False])
def test_a_huge_extended_header_is_refused_unread(
    root: Path, scratch: Path, kind: bytes, zst: bool, first: bool
) -> None:
    """tarfile reads an extended header (PAX, GNU long name) whole, and scans
    it, before the member it describes can be checked: one announcing 1.5 GB
    of zeros, 50 KB as .tar.zst, took the server to 4.7 GB. Past
    MAX_HEADER_BYTES it is BACKUP_INVALID, read no further; first member or
    not (past the first, tarfile took an invalid header for the end). The
    archives Cairn packs, PAX headers and all, still read (the tests above)."""
    announced = 6 << 30  # 6 GiB: reading it would end the test
    header = tarfile.TarInfo("././@PaxHeader" if kind != tarfile.GNUTYPE_LONGNAME else
                             "././@LongLink")
    header.type, header.size = kind, announced
    block = header.tobuf(tarfile.GNU_FORMAT)
    config = member("config.json").tobuf(tarfile.USTAR_FORMAT) + b"x".ljust(512, b"\0")
    data = (block + config) if first else (config + block + b"\0" * 4096)
    root.mkdir(exist_ok=True)
    name = "x.tar.zst" if zst else "x.tar"
    (root / name).write_bytes(zstandard.ZstdCompressor().compress(data) if zst else data)
    with pytest.raises(BackupInvalid, match="extended header announces"):
        archive_repo(root, name, scratch).list_manifests()
    assert os.listdir(scratch) == []



def test_a_sweep_while_running_leaves_a_tar_being_packed(root: Path, scratch: Path) -> None:
    """A `.tar` target's sweep took every packing temp file beside it, so a
    failed or killed job on one server removed the archive another server was
    packing (its BACKUP: "No such file or directory"). Its names carry no
    writer: a sweep while the server runs takes only the tags it saw end."""
    repo = archive_repo(root, "x.tar", scratch)
    ended, packing = ".x.tar." + "e" * 8 + "1" * 8 + ".tmp", ".x.tar." + "f" * 8 + "2" * 8 + ".tmp"
    for name in (ended, packing):
        (root / name).write_bytes(b"x")
    assert repo.remove_tmp(None, "1" * 16, only={"e" * 8}.__contains__) == 1
    assert sorted(n for n in os.listdir(root) if n.endswith(".tmp")) == [packing]
    assert repo.remove_tmp() == 1  # at start: every one (as before)
