"""Fixtures shared by every test: a temp config, an in-process server and a real
`cairn serve` process."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.config import Config
from tests.helpers import ServerProcess

# The tests' data directories, backup targets and servers' scratch go to RAM when
# there is room: a catalog's first open is ~130 ms of fsyncs on this machine's disk
# and ~5 ms on tmpfs, and a suite opens thousands. What is tested does not change:
# every fsync is still called (a kill -9 loses no page cache either way), and the
# tests of a full or read-only disk mount their own tmpfs. Setting TMPDIR (or
# CAIRN_TEST_TMP=default) keeps the usual temp dir.
RAM_TMP, RAM_TMP_NEEDS = "/dev/shm", 8 << 30


def ram_tmp() -> str | None:
    """A directory of this user's on /dev/shm for the tests, or None: TMPDIR set,
    CAIRN_TEST_TMP set, no /dev/shm, not writable, less than RAM_TMP_NEEDS free (a
    container's 64 MB /dev/shm would fill), or the name taken by another user."""
    if os.environ.get("TMPDIR") or os.environ.get("CAIRN_TEST_TMP"):
        return None
    try:
        st = os.statvfs(RAM_TMP)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < RAM_TMP_NEEDS or not os.access(RAM_TMP, os.W_OK):
        return None
    path = os.path.join(RAM_TMP, f"cairn-tests-{os.geteuid()}")  # one a user: /dev/shm is shared
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        mine = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(mine.st_mode) or mine.st_uid != os.geteuid():
        return None  # another user's, or a link: the usual temp dir
    return path


def pytest_configure(config: pytest.Config) -> None:
    # In the controller, before xdist starts its workers (they inherit TMPDIR,
    # and their basetemps are made under the controller's).
    path = ram_tmp()
    if path is not None:
        os.environ["TMPDIR"] = path
        tempfile.tempdir = None


@pytest.fixture
def cairn_config(tmp_path: Path) -> Config:
    cfg = Config()
    cfg.storage.data_dir = str(tmp_path / "data")
    cfg.backup.roots = [str(tmp_path / "backups")]
    cfg.server.port = 0
    cfg.pgwire.port = 0
    return cfg


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config) -> Any:
    from server.app import create_app

    return await aiohttp_client(create_app(cairn_config))


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[Any]:
    """A factory: `server_process()` starts `cairn serve` on tmp_path/data."""
    started: list[ServerProcess] = []

    def start(data_dir: Path | None = None, **kw: Any) -> ServerProcess:
        proc = ServerProcess(data_dir or tmp_path / "data", **kw).start()
        started.append(proc)
        return proc

    yield start
    for p in started:
        p.kill()

