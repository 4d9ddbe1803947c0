"""Fixtures shared by every test: a temp config, an in-process server and a real
`cairn serve` process."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import cairn_process
from server.config import Config
from tests import forkserver, prerewrite
from tests.helpers import ServerProcess

# The benches' servers (the crash campaign's ~25, the load test's) come from this
# worker's fork server too, unless CAIRN_TEST_FORK=0.
if forkserver.usable([sys.executable, "-m", "server.cli"]):
    cairn_process.SPAWN = forkserver.spawn

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
    prerewrite.before_workers(config)  # the workers' collection, compiled once


# The modules whose tests take longest (pytest --durations, summed a module),
# run first in this order, the rest after them in the order collected. xdist
# hands out whole modules (pyproject: --dist loadscope, no reordering), each to
# the first worker with room, so the longest start first and the short ones fill
# in at the end. Under the default `load` the first quarter of the tests went to
# the workers in three contiguous runs: put first, one worker had every long
# module (906 s, the others done at 717 s); collected where they are, a 70 s
# campaign near the end kept one worker busy after the others.
SLOW_FIRST = (
    "tests/e2e/test_backup_s3_lies.py", "tests/proof/test_crash_injection.py",
    "tests/e2e/test_backup_s3_hangs.py", "tests/console/test_web.py",
    "tests/e2e/test_decimal_texts_timeout.py", "tests/e2e/test_disk_full_landed.py",
    "tests/proof/test_manifest_fuzz.py", "tests/e2e/test_job_process.py",
    "tests/e2e/test_kill.py", "tests/console/test_timeline.py",
    "tests/proof/test_backup_contents.py", "tests/pgwire/test_hostile.py",
    "tests/e2e/test_roles.py", "tests/e2e/test_backup_sets.py", "tests/e2e/test_bounds.py",
    "tests/console/test_terminal.py", "tests/proof/test_archive_crash.py",
    "tests/e2e/test_backup_resume.py", "tests/storage/test_model.py",
    "tests/proof/test_sql_fuzz.py", "tests/pgwire/test_cancel_writes.py",
    "tests/e2e/test_connections.py", "tests/proof/test_corruption.py",
    "tests/console/test_cli.py", "tests/e2e/test_backup_restore.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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


# CAIRN_TEST_TIMELINE=PATH: each worker appends when each test starts and ends to
# PATH.<worker>, with the worker's CPU seconds so far (what showed one worker left
# with every long module, and which tests spend the workers' CPU).
_TIMELINE = os.environ.get("CAIRN_TEST_TIMELINE")


def _timeline(what: str, nodeid: str) -> None:
    if _TIMELINE:
        import time
        with open(f"{_TIMELINE}.{os.environ.get('PYTEST_XDIST_WORKER', 'main')}", "a") as f:
            f.write(f"{time.time():.3f} {what} {nodeid} {time.process_time():.3f}\n")


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _timeline("start", nodeid)


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    _timeline("end", nodeid)
