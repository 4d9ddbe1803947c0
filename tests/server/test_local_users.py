"""Other local users of the machine (an unprivileged account beside the one
running Cairn): nothing Cairn writes is open to them, whatever the umask.

They read every table's rows from the data directory (0755 folders and 0644
Parquet and RocksDB files at the usual umask 022), an archive's encryption
passphrase from the catalog, and whole backups (a target's objects, a
`.tar.zst` archive); with umask 000 they could change all of it too."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import CannotStart
from server.config import Config
from storage import datadir
from tests.helpers import ok


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _open_to_others(top: Path) -> list[str]:
    """`top` and everything under it that group or others may read, write or enter."""
    found = []
    for path in [top, *top.rglob("*")]:
        mode = os.lstat(path).st_mode
        if stat.S_IMODE(mode) & 0o077:
            found.append(f"{path.relative_to(top.parent)} {stat.filemode(mode)}")
    return found


async def test_nothing_cairn_writes_is_open_to_other_local_users(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path, loose_umask: None) -> None:
    from server.app import create_app

    client = await aiohttp_client(create_app(cairn_config))
    root = tmp_path / "backups"
    await ok(client, "CREATE NAMESPACE n1")
    await ok(client, "CREATE TABLE n1.t (id INT PRIMARY KEY, secret TEXT)")
    await ok(client, "INSERT INTO n1.t VALUES (1, 'the row')")
    await ok(client, "FLUSH TABLE n1.t")
    await ok(client, f"BACKUP DATABASE n1 TO '{root}/plain'")
    await ok(client, f"BACKUP DATABASE n1 TO '{root}/enc' WITH (encryption_passphrase = 'p w')")
    await ok(client, f"BACKUP DATABASE n1 TO '{root}/whole.tar.zst'")
    assert (root / "whole.tar.zst").is_file() and (root / "plain" / "manifests").is_dir()

    data = Path(cairn_config.data_dir)
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700  # what is in it: behind it
    # A target is not always behind a private folder (an operator's root):
    # each of its folders and files is the owner's alone.
    assert _open_to_others(root) == []


def test_a_data_directory_open_to_others_is_made_private_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o757)
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        datadir.make_private(data)
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert any("open to other users (mode 757)" in r.getMessage() for r in caplog.records)
    caplog.clear()
    datadir.make_private(data)  # as it should be: nothing said
    assert not caplog.records


def test_a_data_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    # Tests run as root; elsewhere a folder of root's stands for another user's.
    if os.geteuid() == 0:
        os.chown(data, 65534, 65534)
    else:
        data = Path("/")
    with pytest.raises(CannotStart, match="belongs to another user"):
        datadir.make_private(data)
    if os.geteuid() == 0:
        assert stat.S_IMODE(os.stat(data).st_mode) == 0o700 and os.stat(data).st_uid == 65534


def test_serve_warns_of_a_config_file_that_others_may_read_holding_a_token(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    in_the_way = tmp_path / "a-file"  # the data dir: `cairn serve` stops there, after the check
    in_the_way.write_text("")
    config = tmp_path / "cairn.toml"
    config.write_text(f'[storage]\ndata_dir = "{in_the_way}"\n[auth]\nmode = "token"\n'
                      '[[auth.tokens]]\ntoken = "s3cr3t-admin"\nuser = "root"\nrole = "admin"\n'
                      '[pgwire]\nport = 0\n')
    os.chmod(config, 0o644)
    args = [sys.executable, "-m", "server.cli", "serve", "--config", str(config)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr  # cannot start: the data dir is a file
    said = [line for line in done.stderr.splitlines() if "other users" in line]
    assert len(said) == 1 and "holds tokens" in said[0] and "chmod 600" in said[0], said
    assert "s3cr3t" not in said[0]

    from server import config as config_mod
    from server.secret_files import warn_open_secrets

    os.chmod(config, 0o600)  # the owner's alone: nothing said
    with caplog.at_level(logging.WARNING):
        assert warn_open_secrets(config_mod.load(config), config) == []
    assert not caplog.records


async def test_a_backup_root_or_target_of_another_user_is_refused(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    # A shared folder (/var/tmp): another user took the names first. Their
    # folders were written into, and the backups there were theirs to remove or
    # replace. CI runs the tests as root, which may give a folder to another uid.
    from server.app import create_app
    from tests.helpers import sql

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    theirs_root = shared / "cairn-backups"
    theirs_root.mkdir(mode=0o700)
    cairn_config.backup.roots = [str(tmp_path / "backups"), str(theirs_root)]
    client = await aiohttp_client(create_app(cairn_config))
    # Theirs since the server started (one of theirs at start is refused then:
    # test_local_users_roots.py): each statement asks again.
    theirs_root.chmod(0o777)
    os.chown(theirs_root, 65534, 65534)
    await ok(client, "CREATE NAMESPACE n1; CREATE TABLE n1.t (id INT PRIMARY KEY)")
    await ok(client, "BACKUP DATABASE n1 TO 'mine'")  # a root of the server's own: as before

    status, body = await sql(client, f"BACKUP DATABASE n1 TO '{theirs_root}/nightly'")
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", body
    assert "backup root" in body["error"]["message"]
    assert "belongs to another user (uid 65534)" in body["error"]["message"]
    assert list(theirs_root.iterdir()) == []

    taken = tmp_path / "backups" / "nightly"  # in the server's root, a target made by another
    taken.mkdir(mode=0o777)
    os.chown(taken, 65534, 65534)
    for statement in ("BACKUP DATABASE n1 TO 'nightly'", "SHOW BACKUPS IN 'nightly'"):
        status, body = await sql(client, statement)
        assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", body
        assert f"'{taken}' belongs to another user (uid 65534)" in body["error"]["message"]
    assert list(taken.iterdir()) == []

    os.chown(taken, os.geteuid(), os.getegid())  # the server's, but anyone may write to it
    taken.chmod(0o777)
    status, body = await sql(client, "BACKUP DATABASE n1 TO 'nightly'")
    assert status == 403 and "can be written by any user (mode 0777, no sticky bit)" in \
        body["error"]["message"], body
    taken.chmod(0o700)
    await ok(client, "BACKUP DATABASE n1 TO 'nightly'")


def test_a_data_directory_reached_through_another_users_link_or_folder_is_refused(
        tmp_path: Path) -> None:
    # Theirs to move away while the server runs (and put a folder of their own
    # in its place, which the server then wrote every new file into), or to point
    # elsewhere. CI runs the tests as root, which may give a folder to another uid.
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(CannotStart, match=f"the folder above it '{theirs}' belongs to another"):
        datadir.make_private(theirs / "data")
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = tmp_path / "shared-data"  # made first in a shared folder, pointing at a folder of ours
    link.symlink_to(mine)
    os.lchown(link, 65534, 65534)
    with pytest.raises(CannotStart, match=f"'{link}' is a symbolic link that belongs to another"):
        datadir.make_private(link.resolve(), str(link))
    os.lchown(link, os.geteuid(), os.getegid())  # one's own link: as before
    datadir.make_private(link.resolve(), str(link))
    open_to_all = tmp_path / "open"  # the server's, but anyone may rename what is in it
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    with pytest.raises(CannotStart, match=r"written by any user \(mode 0777, no sticky bit\)"):
        datadir.make_private(open_to_all / "data")
    open_to_all.chmod(0o1777)  # /tmp's way: only an entry's owner renames it
    datadir.make_private(open_to_all / "data")


async def test_a_link_of_another_users_in_a_shared_root_is_refused(
        aiohttp_client: Any, cairn_config: Config, tmp_path: Path) -> None:
    """A root in a shared sticky folder (`roots = ["/var/tmp"]`): another user's
    link there, named as a target, sent every BACKUP into a folder of theirs
    (a `.tar` archive too; found by the round's regress attacker): only the
    end of the way was checked, and it did not exist yet."""
    from server.app import create_app
    from tests.helpers import sql

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    theirs = shared / "theirs"  # inside the root: the resolved end of the way is inside it
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    link = shared / "nightly"
    link.symlink_to(theirs)
    os.lchown(link, 65534, 65534)
    cairn_config.backup.roots = [str(shared)]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE n1; CREATE TABLE n1.t (id INT PRIMARY KEY)")
    for statement in ("BACKUP DATABASE n1 TO 'nightly/app'",
                      "BACKUP DATABASE n1 TO 'nightly/app.tar'"):
        status, body = await sql(client, statement)
        assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", body
        assert f"'{link}' belongs to another user (uid 65534)" in body["error"]["message"]
    assert list(theirs.iterdir()) == []
    await ok(client, "BACKUP DATABASE n1 TO 'mine'")  # the root itself: as before
