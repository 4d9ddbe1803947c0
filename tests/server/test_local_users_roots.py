"""Other local users and the backup roots, when the server starts: the way to
each root is checked as the data directory's is, and a root open to other
users is said once (the backups made by an older release in it are 0755/0644)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from catalog.errors import CannotStart
from server.app import open_state
from server.config import Config
from storage import datadir, roots


def _theirs(path: Path, mode: int = 0o755) -> Path:
    """A folder of another user's (uid 65534). CI runs the tests as root, which
    may give a folder to another uid."""
    path.mkdir(mode=mode)
    path.chmod(mode)
    os.chown(path, 65534, 65534)
    return path


def _check(root: Path | str) -> list[str]:
    return roots.check_roots([str(root)], [os.path.realpath(root)])


def test_a_root_below_another_users_folder_or_through_their_link_is_refused_at_start(
        tmp_path: Path, cairn_config: Config) -> None:
    """The data directory's way was checked at start, a root's was not: a root
    below another user's folder (theirs to move away and replace with a folder
    of their own, which then took every backup), or named through their link
    (theirs to point elsewhere), started and took backups."""
    theirs = _theirs(tmp_path / "theirs")
    (tmp_path / "mine").mkdir(mode=0o700)
    below = theirs / "backups"  # not there yet: the first BACKUP would make it
    with pytest.raises(CannotStart, match=f"backup root '{below}' is not allowed: the folder "
                                          f"above it '{theirs}' belongs to another user"):
        _check(below)
    link = tmp_path / "shared-backups"  # made first in a shared folder, pointing at ours
    link.symlink_to(tmp_path / "mine")
    os.lchown(link, 65534, 65534)
    with pytest.raises(CannotStart, match=f"backup root '{link}' is not allowed: '{link}' is "
                                          f"a symbolic link that belongs to another user"):
        _check(link)
    with pytest.raises(CannotStart, match=f"backup root '{theirs}' is not allowed: it belongs "
                                          f"to another user \\(uid 65534\\)"):
        _check(theirs)
    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    with pytest.raises(CannotStart, match=r"written by any user \(mode 0777, no sticky bit\)"):
        _check(open_to_all / "backups")

    # The server does not start with one (one root of several is enough).
    cairn_config.backup.roots = [str(tmp_path / "mine"), str(below)]
    with pytest.raises(CannotStart, match=f"backup root '{below}' is not allowed"):
        open_state(cairn_config)

    # As before: one's own link and folders, a sticky shared folder, "/", a
    # root not there yet, the default root in the data directory.
    os.lchown(link, os.geteuid(), os.getegid())
    open_to_all.chmod(0o1777)
    for fine in (link, tmp_path / "mine", open_to_all / "backups", "/", tmp_path / "new/x"):
        _check(fine)
    assert roots.check_roots([], [str(tmp_path / "data" / "backups")]) == []


def test_a_root_open_to_other_users_is_said_once_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Old targets (0755 folders, 0644 files) in a 0755 root stayed readable by
    every local user with not a word. The server changes none of it (the
    operator's backups: a group may be meant to read them): it says so, once."""
    root = tmp_path / "backups"
    root.mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        assert _check(root) == []  # the owner's alone: nothing said
        root.chmod(0o755)
        assert _check(root) == [str(root)]
        root.chmod(0o775)  # group-writable: its members may remove or replace backups
        assert _check(root) == [str(root)]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert "open to other users (mode 0755)" in said[0] and f"chmod -R go= '{root}'" in said[0]
    assert "group may remove or replace them" not in said[0]
    assert "(mode 0775)" in said[1] and "members of its group may remove or replace" in said[1]
    assert oct(os.stat(root).st_mode & 0o777) == "0o775"  # left as it is

    # A shared sticky folder (/var/tmp) is open by design: said only when an
    # old target or archive at its top is open to others.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    caplog.clear()
    (shared / "notes").mkdir(mode=0o755)  # not a backup target
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        assert _check(shared) == []
        old = shared / "nightly"
        old.mkdir(mode=0o755)
        (old / "config.json").write_text("{}")
        (shared / "app.tar.zst").write_text("")
        os.chmod(shared / "app.tar.zst", 0o644)
        assert _check(shared) == [str(shared)]
        old.chmod(0o700)
        os.chmod(shared / "app.tar.zst", 0o600)
        assert _check(shared) == []
    (said,) = [r.getMessage() for r in caplog.records]
    assert "2 backup target(s)" in said and f"'{old}'" in said and "chmod -R go= each" in said


# A shell of another user's: reads each name it is sent, from where it stands.
_SHELL = ('while read -r name; do if c=$(cat "$name" 2>/dev/null); then echo "read:$c"; '
          'else echo denied; fi; done')


def test_a_shell_of_another_user_inside_the_data_directory_reads_nothing_new(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A data directory of an older release (0755 folders, 0644 files): another
    user's shell already inside it (`cd <data>/files/ns`) read every file the
    server added after the upgrade, which made only the top folder 0700. Now
    the whole tree is closed at start, without following a link."""
    import subprocess

    data = tmp_path / "data"
    inside = data / "files" / "ns"
    inside.mkdir(mode=0o755, parents=True)
    for folder in (data, data / "files", inside):
        folder.chmod(0o755)
    (data / "catalog").mkdir(mode=0o755)
    (data / "catalog" / "000001.sst").write_text("catalog")
    (inside / "old.parquet").write_text("old rows")
    os.chmod(inside / "old.parquet", 0o644)
    outside = tmp_path / "elsewhere.txt"  # a link inside is never followed
    outside.write_text("not the server's")
    os.chmod(outside, 0o644)
    (inside / "link").symlink_to(outside)
    tmp_path.chmod(0o755)  # the way in, for uid 65534
    shell = subprocess.Popen(["/bin/sh", "-c", _SHELL], cwd=inside, user=65534,
                             group=65534, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert shell.stdin is not None and shell.stdout is not None
        shell.stdin.write("old.parquet\n")
        shell.stdin.flush()
        assert shell.stdout.readline().strip() == "read:old rows"  # as it was: theirs to read

        with caplog.at_level(logging.WARNING, logger="cairn.storage"):
            datadir.make_private(data)
        (inside / "new.parquet").write_text("new rows")  # the umask's 0644, as the server's
        os.chmod(inside / "new.parquet", 0o644)
        for name in ("new.parquet", "old.parquet"):
            shell.stdin.write(f"{name}\n")
            shell.stdin.flush()
            assert shell.stdout.readline().strip() == "denied", name
    finally:
        shell.kill()
        shell.wait()
    for path in (data, data / "files", inside, inside / "old.parquet", data / "catalog",
                 data / "catalog" / "000001.sst"):
        assert os.lstat(path).st_mode & 0o077 == 0, path
    assert os.stat(outside).st_mode & 0o777 == 0o644  # not followed
    said = [r.getMessage() for r in caplog.records]
    assert any("held 5 of 6 files and folders open to other users" in m for m in said), said

    # A release that made only the top folder 0700: its tree is closed too.
    (data / "files" / "ns2").mkdir(mode=0o755)
    (data / "files").chmod(0o755)
    data.chmod(0o700)
    make_private = datadir.make_private
    make_private(data)
    assert os.stat(data / "files" / "ns2").st_mode & 0o077 == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        make_private(data)  # closed: not walked again, nothing said
    assert not caplog.records


def test_a_folder_given_as_data_directory_keeps_the_modes_of_what_was_there(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`cairn serve --data-dir .` in a home or project folder (0755, never a
    Cairn data directory): the start closed the whole tree, every file and
    folder of the user's in it (public_html/ 0700, index.html 0600, modes that
    cannot be put back). Only Cairn's own folders are closed; a backups/ of the
    user's too is left while there is no catalog (a first start)."""
    home = tmp_path / "home"
    site = home / "public_html" / "img"
    site.mkdir(parents=True)
    mine = [home / "public_html", site, home / "backups"]
    (home / "backups").mkdir()
    for folder in (home, *mine):
        folder.chmod(0o755)
    for name in ("public_html/index.html", "public_html/img/a.png", "notes.txt",
                 "backups/2026.tar"):
        (home / name).write_text("x")
        (home / name).chmod(0o644)
        mine.append(home / name)
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        datadir.make_private(home)
    assert os.stat(home).st_mode & 0o777 == 0o700  # the top, as before (said)
    changed = [f"{p}: {os.stat(p).st_mode & 0o777:o}" for p in mine
               if os.stat(p).st_mode & 0o077 == 0]
    assert not changed
    assert not any("held" in r.getMessage() for r in caplog.records)

    # A Cairn data directory (its catalog there) of an older release: its own
    # folders closed, the default root's old targets too; the rest left.
    for name in ("catalog", "files", "tmp"):
        (home / name).mkdir(mode=0o755)
        (home / name).chmod(0o755)
    (home / "catalog" / "CURRENT").write_text("MANIFEST-000001\n")
    (home / "catalog" / "CURRENT").chmod(0o644)
    home.chmod(0o755)
    datadir.make_private(home)
    for path in (home / "catalog", home / "catalog" / "CURRENT", home / "files",
                 home / "tmp", home / "backups", home / "backups" / "2026.tar"):
        assert os.stat(path).st_mode & 0o077 == 0, path
    for path in mine[:2] + mine[3:6]:  # public_html, img, index.html, a.png, notes.txt
        assert os.stat(path).st_mode & 0o077, path


def test_a_tree_nested_deeper_than_the_stack_is_closed(tmp_path: Path) -> None:
    """An older release's data directory whose files/ held folders nested past
    Python's recursion limit: the start failed (RecursionError, a traceback)
    and the next one left the deepest folders open."""
    import subprocess
    import sys

    data = tmp_path / "data"
    (data / "files").mkdir(parents=True)
    depth = sys.getrecursionlimit()  # pytest's own frames take it past the limit
    fd = os.open(data / "files", os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("a", 0o755, dir_fd=fd)
            deeper = os.open("a", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        os.close(os.open("last.parquet", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        os.fchmod(fd, 0o755)
        deepest = os.fstat(fd)
    finally:
        os.close(fd)
    data.chmod(0o755)
    try:
        datadir.make_private(data)
        fd = os.open(data / "files", os.O_RDONLY)
        try:
            for _ in range(depth):
                deeper = os.open("a", os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = deeper
            assert os.fstat(fd).st_ino == deepest.st_ino
            assert os.fstat(fd).st_mode & 0o077 == 0
            assert os.stat("last.parquet", dir_fd=fd).st_mode & 0o077 == 0
        finally:
            os.close(fd)
    finally:
        subprocess.run(["rm", "-rf", str(data)], check=True)  # rmtree recurses too


def test_a_read_only_mount_in_the_tree_does_not_fail_the_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An older release's data directory with an old backup disk mounted read-only
    in its default root (to RESTORE from): the walk's chmod raised EROFS and the
    start failed ('cannot start: [Errno 30] Read-only file system', no path).
    The rest is closed, the refused ones are said."""
    from tests.storage_backup.test_failures import mounted

    data = tmp_path / "data"
    old = data / "backups" / "old"
    (data / "files" / "ns").mkdir(parents=True)
    (data / "catalog").mkdir()
    (data / "catalog" / "CURRENT").write_text("MANIFEST-000001\n")
    old.mkdir(parents=True)
    (old / "config.json").write_text("{}")
    (data / "files" / "ns" / "old.parquet").write_text("rows")
    for path in (data, data / "files", data / "files" / "ns", data / "catalog",
                 data / "backups", old):
        path.chmod(0o755)
    for path in (old / "config.json", data / "files" / "ns" / "old.parquet"):
        path.chmod(0o644)
    with mounted([["mount", "--bind", str(old)], ["mount", "-o", "remount,ro,bind"]], old), \
            caplog.at_level(logging.WARNING, logger="cairn.storage"):
        datadir.make_private(data)
        assert os.stat(old / "config.json").st_mode & 0o777 == 0o644  # read-only: as it was
    for path in (data / "files" / "ns", data / "files" / "ns" / "old.parquet",
                 data / "catalog" / "CURRENT", data / "backups"):
        assert os.stat(path).st_mode & 0o077 == 0, path
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "holds 2 files or folders open to other users that the file system would " \
           "not change" in said, said


def test_a_root_below_a_folder_the_server_cannot_look_into_names_the_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server not run as root, its root below a folder it may not enter (root's
    0700): the start failed with a bare "[Errno 13] Permission denied", naming
    neither the root nor the setting. The tests run as root, who enters every
    folder, so the refusal of the look is what the file system would answer."""
    locked = tmp_path / "locked"

    def refuse(root: str, real: Path) -> str | None:
        raise PermissionError(13, "Permission denied", str(locked / "sub"))

    monkeypatch.setattr(roots, "others_way", refuse)
    said = (f"backup root '{locked}/sub/backups' cannot be checked: Permission denied "
            f"\\('{locked}/sub'\\): give \\[backup\\] roots a folder the server's user can reach")
    with pytest.raises(CannotStart, match=said):
        _check(locked / "sub" / "backups")
