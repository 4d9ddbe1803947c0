"""No link inside a target is followed (issue 11): a symlink planted for an
internal folder or a file is refused with PERMISSION_DENIED where it is met,
by reads, writes and every clean-up, and nothing outside the roots is read,
written or deleted. Targets inside another repository's internal folders are
refused."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from catalog.errors import InvalidArgument, PermissionDenied
from storage.backup import Repository, resolve_target

from .conftest import MakeFile
from .test_manifest import backed_up


def outside_copy(tmp_path: Path, inside: Path) -> Path:
    """Move `inside` (a folder, made if absent) outside the roots and link it back."""
    copy = tmp_path / "outside" / inside.name
    copy.parent.mkdir(exist_ok=True)
    if inside.exists():
        shutil.move(inside, copy)
    else:
        copy.mkdir()
    os.symlink(copy, inside)
    return copy


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("folder", ["tmp", "objects", "manifests", "locks", "keys", "prunes"])
def test_linked_folder_is_refused_by_everything(repo: Repository, make_file: MakeFile,
                                                tmp_path: Path, folder: str) -> None:
    sources = backed_up(repo, make_file)
    copy = outside_copy(tmp_path, Path(repo.target.base) / folder)
    (copy / ("c" * 32 + ".tmp")).write_bytes(b"a crash leftover, outside the roots")
    before = tree(copy)
    fresh = Repository(repo.target)
    contents: list[tuple[str, int | None]] = [(s.sha256, s.size) for s in sources]
    calls = {
        "remove_tmp": fresh.remove_tmp, "prune": fresh.prune, "list": fresh.list_manifests,
        "read": lambda: fresh.read_manifest("bk-1"),
        "verify": lambda: fresh.verify("bk-1", contents=False),
        "abandon": lambda: fresh.abandon("bk-1"), "put": lambda: fresh.put_bytes(b"new"),
        **({"find": lambda: fresh.find_contents(contents)} if folder == "objects" else {}),
    }
    for name, call in calls.items():
        with pytest.raises(PermissionDenied, match=f"symbolic link at '{folder}'"):
            call()
        assert tree(copy) == before, name


def test_linked_object_file(repo: Repository, make_file: MakeFile, tmp_path: Path) -> None:
    sources = backed_up(repo, make_file)
    oid = sources[0].sha256
    victim = Path(repo.target.base) / "objects" / oid[:2] / oid
    copy = tmp_path / "elsewhere"
    shutil.move(victim, copy)
    os.symlink(copy, victim)
    with pytest.raises(PermissionDenied, match="symbolic link at 'objects/"):
        repo.read_object_to(oid, str(tmp_path / "out"), sources[0].size)
    with pytest.raises(PermissionDenied):
        repo.verify("bk-1", contents=False)
    with pytest.raises(PermissionDenied):
        repo.prune()
    assert copy.read_bytes() == sources[0].data and not (tmp_path / "out").exists()


@pytest.mark.parametrize("linked", ["shard", "object"])
def test_a_link_met_in_a_batch_lookup_is_refused(repo: Repository, make_file: MakeFile,
                                                  tmp_path: Path, linked: str) -> None:
    """A backup's look-up of all its files at once (`find_contents`, each
    directory opened once), and a prune's of a dropped backup's objects, meet
    a linked shard folder or object file as a single look-up does: refused,
    never reported as stored nor removed."""
    sources = backed_up(repo, make_file)
    oid = sources[0].sha256
    shard = Path(repo.target.base) / "objects" / oid[:2]
    if linked == "shard":
        outside_copy(tmp_path, shard)
    else:
        shutil.move(shard / oid, tmp_path / "elsewhere")
        os.symlink(tmp_path / "elsewhere", shard / oid)
    with pytest.raises(PermissionDenied, match=f"symbolic link at 'objects/{oid[:2]}"):
        repo.find_contents([(s.sha256, s.size) for s in reversed(sources)])
    with pytest.raises(PermissionDenied, match=f"symbolic link at 'objects/{oid[:2]}"):
        repo.prune(candidates={s.sha256 for s in sources})  # a dropped backup's objects


def test_only_cairn_names_are_cleaned(repo: Repository, make_file: MakeFile) -> None:
    backed_up(repo, make_file)
    base = Path(repo.target.base)
    (base / "tmp").mkdir(exist_ok=True)
    for name in ("precious.db", "d" * 32 + ".tmp.keep", "x.tmp"):
        (base / "tmp" / name).write_text("not Cairn's")
    (base / "objects" / "zz").mkdir()
    (base / "objects" / "zz" / "notes").write_text("not an object")
    assert repo.remove_tmp() == 0 and repo.prune() == 0
    assert len(list((base / "tmp").iterdir())) == 3 and (base / "objects" / "zz" / "notes").exists()


@pytest.mark.parametrize("target", ["main/objects/x", "main/tmp/y", "main/manifests",
                                    "main/keys/a.tar"])
def test_target_inside_internal_folder(repo: Repository, make_file: MakeFile, root: Path,
                                       target: str) -> None:
    backed_up(repo, make_file)
    with pytest.raises(PermissionDenied, match="internal folder"):
        resolve_target(target, [str(root)], {})


def test_target_holding_a_repository_in_its_internals(repo: Repository, make_file: MakeFile,
                                                     root: Path) -> None:
    backed_up(repo, make_file)
    shutil.copytree(repo.target.base, root / "holder" / "objects")
    with pytest.raises(PermissionDenied, match="internal folder 'objects'"):
        resolve_target("holder", [str(root)], {})
    assert resolve_target("team/nightly", [str(root)], {}).kind == "local"  # plain nesting is fine
    # A link named like an internal folder is not a folder holding anything
    # (nothing in a target follows links): the same one lstat says both.
    (root / "linker").mkdir()
    os.symlink(repo.target.base, root / "linker" / "objects")
    assert resolve_target("linker", [str(root)], {}).kind == "local"
    (root / "linker" / "objects").unlink()
    shutil.copytree(repo.target.base, root / "linker" / "objects")
    with pytest.raises(PermissionDenied, match="internal folder 'objects'"):
        resolve_target("linker", [str(root)], {})


def test_a_repositorys_own_target_is_checked_in_a_few_stats(
        repo: Repository, make_file: MakeFile, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every BACKUP resolves its target again, on a server thread: each stat a
    take of the GIL beside the statements. A target that is a repository
    already (its config.json there) is not searched for repositories in its
    internal folders (~30 stats): none can come to be there through Cairn,
    as a target inside them is refused (above). One that is not a
    repository yet still is."""
    backed_up(repo, make_file)
    calls: list[str] = []
    for name in ("stat", "lstat"):
        real = getattr(os, name)

        def counting(*args: object, _real: object = real, _name: str = name,
                     **kw: object) -> object:
            calls.append(_name)
            return _real(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(os, name, counting)
    assert resolve_target("main", [str(root)], {}).base == repo.target.base
    # The root (a stat), the target (an lstat: only the names below the root
    # are resolved once the root is known), its config.json (an lstat). A
    # realpath of the target alone was an lstat a component from /.
    assert calls == ["stat", "lstat", "lstat"], calls
    monkeypatch.undo()
    shutil.copytree(repo.target.base, root / "holder" / "tmp")
    with pytest.raises(PermissionDenied, match="internal folder 'tmp'"):
        resolve_target("holder", [str(root)], {})
    with pytest.raises(PermissionDenied, match="internal folder 'tmp'"):
        resolve_target("main/tmp/inner", [str(root)], {})


def test_a_root_whose_parent_is_relinked_while_running_is_not_followed(
        tmp_path: Path) -> None:
    """Only the names below a root are resolved once it is known; a root that
    is no longer the directory first found there (a folder above it
    replaced by a link elsewhere) is resolved whole again, and its targets
    refused as outside the roots."""
    (tmp_path / "disk" / "backups").mkdir(parents=True)
    (tmp_path / "other" / "backups").mkdir(parents=True)
    root = tmp_path / "disk" / "backups"
    assert resolve_target("nightly", [str(root)], {}).base == str(root / "nightly")
    (tmp_path / "disk").rename(tmp_path / "disk-was")
    os.symlink(tmp_path / "other", tmp_path / "disk")
    with pytest.raises(PermissionDenied, match="resolves outside the backup roots"):
        resolve_target("nightly", [str(root)], {})


def test_a_link_below_the_root_is_resolved_before_the_check(tmp_path: Path) -> None:
    root, outside = tmp_path / "backups", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "sub" / "out")
    os.symlink(root / "sub", root / "inside")
    with pytest.raises(PermissionDenied, match="resolves outside the backup roots"):
        resolve_target("sub/out/nightly", [str(root)], {})
    assert resolve_target("inside/nightly", [str(root)], {}).base == str(root / "sub" / "nightly")
    (root / "sub" / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="not a directory"):
        resolve_target("sub/file", [str(root)], {})
    assert resolve_target("sub/new/deeper", [str(root)], {}).base == str(root / "sub/new/deeper")


def test_a_root_pointed_elsewhere_while_running_is_not_followed(tmp_path: Path) -> None:
    """A root is resolved once (each statement asked again, a system call per
    component on a server thread beside the event loop): a root that is a link,
    pointed at another folder later, does not take targets there."""
    first, elsewhere = tmp_path / "disk1", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    link = tmp_path / "root-link"
    os.symlink(first, link)
    assert resolve_target("nightly", [str(link)], {}).base == str(first / "nightly")
    link.unlink()
    os.symlink(elsewhere, link)
    with pytest.raises(PermissionDenied, match="resolves outside the backup roots"):
        resolve_target("nightly", [str(link)], {})


def fifo_in_place_of(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


@pytest.mark.timeout(30)  # a FIFO opened to read waits for a writer: a hang here is the bug
@pytest.mark.parametrize("what", ["manifest", "object"])
def test_a_fifo_is_refused_where_it_is_met_never_waited_on(
        repo: Repository, make_file: MakeFile, tmp_path: Path, what: str) -> None:
    """A FIFO (any special file) planted in a target is refused like a link,
    naming it: never skipped as if absent, never opened to wait for a writer."""
    sources = backed_up(repo, make_file)
    base = Path(repo.target.base)
    oid = sources[0].sha256
    victim = (base / "manifests" / "bk-1.json" if what == "manifest"
              else base / "objects" / oid[:2] / oid)
    fifo_in_place_of(victim)
    rel = str(victim.relative_to(base))
    fresh = Repository(repo.target)
    calls = {
        "verify": lambda: fresh.verify("bk-1"),
        "verify, sizes": lambda: fresh.verify("bk-1", contents=False),
        "prune": fresh.prune,
    }
    if what == "manifest":
        calls["list"] = fresh.list_manifests
        calls["read"] = lambda: fresh.read_manifest("bk-1")
    else:
        calls["restore's read"] = lambda: fresh.read_object_to(
            oid, str(tmp_path / "out"), sources[0].size)
    for name, call in calls.items():
        with pytest.raises(PermissionDenied, match=f"special file .* at '{rel}'"):
            call()
        assert victim.is_fifo(), name
    assert not (tmp_path / "out").exists()


@pytest.mark.timeout(30)
def test_a_fifo_is_never_opened_to_write(repo: Repository, make_file: MakeFile) -> None:
    """Writing where a FIFO sits (no reader) is refused at once, not waited on."""
    sources = backed_up(repo, make_file)
    base = Path(repo.target.base)
    victim = base / "objects" / sources[0].sha256[:2] / sources[0].sha256
    fifo_in_place_of(victim)
    with pytest.raises(PermissionDenied, match="special file"):
        repo.target.fs.open_output_stream(str(victim)).close()


@pytest.mark.timeout(30)
def test_a_fifo_archive_is_refused(tmp_path: Path) -> None:
    from catalog.errors import BackupInvalid
    from storage.backup.tarball import Reader

    archive = tmp_path / "bk.tar"
    os.mkfifo(archive)
    with pytest.raises(BackupInvalid, match="not a regular file"):
        Reader(str(archive))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("folder", ["manifests", "objects", "locks", "prunes", "shard"])
def test_a_file_where_a_folder_belongs_is_damage_never_an_empty_folder(
        repo: Repository, make_file: MakeFile, folder: str) -> None:
    """`manifests/` (or another folder of the target) replaced by a regular
    file was listed as empty: SHOW BACKUPS IN answered no rows, ATTACH '0 of
    0', RESTORE 'no backup'. Now every read, listing and write that meets it
    is BACKUP_INVALID naming it; a FIFO there is PERMISSION_DENIED, as before."""
    from catalog.errors import BackupInvalid

    sources = backed_up(repo, make_file)
    base = Path(repo.target.base)
    oid = sources[0].sha256
    rel = f"objects/{oid[:2]}" if folder == "shard" else folder
    victim = base / rel
    if victim.exists():
        shutil.rmtree(victim)
    victim.write_bytes(b"not a folder")
    fresh = Repository(repo.target)
    # A prune lists `objects/` and skips a stray file there (a shard's name or not).
    calls: dict[str, Callable[[], object]] = {} if folder == "shard" else {"prune": fresh.prune}
    if folder == "manifests":
        calls |= {"list": fresh.list_manifests, "ids": fresh.manifest_ids,
                  "read": lambda: fresh.read_manifest("bk-1"),
                  "has": lambda: fresh.has_manifest("bk-1")}
    if folder in ("objects", "shard"):
        calls["find"] = lambda: fresh.find_contents([(oid, sources[0].size)])
    if folder == "locks":
        calls["lock"] = lambda: fresh.lock("bk-2").add([oid])
    if folder == "prunes":
        calls["check"] = fresh.check_prunable
    for name, call in calls.items():
        with pytest.raises(BackupInvalid, match=f"holds a file at '{rel}' where a folder"):
            call()
        assert victim.read_bytes() == b"not a folder", name
    if folder in ("manifests", "objects", "shard"):
        report = fresh.verify("bk-1", contents=False)
        assert not report.is_valid
        assert f"holds a file at '{rel}' where a folder" in " ".join(report.errors)
    victim.unlink()
    os.mkfifo(victim)
    with pytest.raises(PermissionDenied, match=f"special file .* at '{rel}'"):
        next(iter(calls.values()))()
