"""The archive helper process (storage/archive/helper.py): it builds the same
segment body the server would, reports a damaged entry without dying, is
replaced after it dies, and never outlives the process that started it."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from server import archiving
from storage.archive import segment
from storage.archive.blocks import encode_body
from storage.archive.changes import Change, RawChanges, _encoder
from storage.archive.helper import BodyHelper, HelperFailed
from storage.archive.segment import SegmentName
from tests.archive.test_archiving import FAST, wait_shipped
from tests.archive.test_blocks import AID, NS, log
from tests.helpers import ok, rows, state


def raw(cs: list[Change]) -> RawChanges:
    return RawChanges([_encoder.encode(c) for c in cs], cs[-1].lsn, cs[-1].at_us)


def gone(pid: int, within: float = 10.0) -> bool:
    """True once `pid` is no process (or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def reaped(helper: BodyHelper, within: float = 10.0) -> None:
    """Wait until `helper`'s killed process can be reaped: a multi-threaded
    one shows a zombie (`gone`) while its threads still exit, and
    poll() says it runs until they have."""
    deadline = time.monotonic() + within
    while helper.pid is not None:
        assert time.monotonic() < deadline, "the killed helper was never reaped"
        time.sleep(0.01)


@pytest.fixture
def helper() -> Iterator[BodyHelper]:
    h = BodyHelper()
    yield h
    h.close()


def test_the_helper_builds_the_servers_body(helper: BodyHelper) -> None:
    """Byte for byte encode_body of the same changes, and the sealed segment is
    what segment.encode writes; several requests on one process."""
    for seed in range(3):
        cs = log(random.Random(seed), 200)
        body, cpu = helper.body(raw(cs).parts())
        assert body == encode_body(cs) and cpu >= 0
        name = SegmentName(cs[0].lsn - 1, cs[-1].lsn, cs[0].at_us - 1, cs[-1].at_us)
        assert (segment.seal(NS, AID, name, body, len(cs), True, None)
                == segment.encode(NS, AID, name, cs, True, None))
    assert helper.pid is not None


def test_a_damaged_entry_fails_the_request_not_the_helper(helper: BodyHelper) -> None:
    cs = log(random.Random(7), 20)
    pid = None
    for bad in ([b"\x91\xc1"], [b"\x91", _encoder.encode([1, 2, "rows", "t", b"not arrow"])]):
        with pytest.raises(HelperFailed, match="could not build"):
            helper.body(bad)
        pid = pid or helper.pid
        assert helper.pid == pid  # still the same process
    assert helper.body(raw(cs).parts())[0] == encode_body(cs)


def test_a_helper_killed_between_requests_is_replaced_by_the_next(helper: BodyHelper) -> None:
    """Killed while idle (the OOM killer): the next request starts a new one
    and is answered. Before, it failed (HelperFailed) though nothing was lost,
    and STOP ARCHIVING's last segment, built then, was never shipped."""
    cs = log(random.Random(3), 30)
    helper.start()
    pid = helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    reaped(helper)
    assert helper.body(raw(cs).parts())[0] == encode_body(cs)
    assert helper.pid not in (None, pid)
    pid = helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    reaped(helper)
    body, cpu = helper.build(raw(cs).parts())  # built here while the new one starts
    assert body == encode_body(cs)
    assert helper.pid not in (None, pid)


def test_close_stops_the_helper() -> None:
    h = BodyHelper()
    h.start()
    pid = h.pid
    assert pid is not None
    h.close()
    assert gone(pid, 1.0) and h.pid is None


def test_the_helper_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL of the process that started the helper (the server) closes the
    helper's stdin: the helper exits instead of running on as an orphan."""
    script = ("import sys, time\n"
              "from storage.archive.helper import BodyHelper\n"
              "h = BodyHelper(); h.start()\n"
              "print(h.pid, flush=True)\n"
              "time.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not gone(pid, 0.2)
        parent.kill()
        parent.wait()
        assert gone(pid), "the helper outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


async def test_a_helper_killed_while_archiving_loses_nothing(client: Any) -> None:
    """The server's helper killed between two cycles: the next cycle starts a
    new one and ships (no failure: nothing was lost), and the archive has no
    gap and no duplicate: VERIFY is clean and a restore to now holds every
    row once."""
    svc = archiving.service(state(client))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    pid = await wait_helper(svc, None)
    os.kill(pid, signal.SIGKILL)
    reaped(svc.helper)
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await ok(client, "INSERT INTO app.t VALUES (3)")
    shown = await wait_shipped(client, timeout=20)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    assert await wait_helper(svc, pid) != pid
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True and report["changes"] == 3, report
    until = shown["archived_until"]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{until}')")
    assert [r["id"] for r in await rows(client, "SELECT id FROM r.t ORDER BY id")] == [1, 2, 3]


async def test_stop_right_after_the_helper_died_ships_the_last_changes(client: Any) -> None:
    """STOP ARCHIVING right after the helper was killed (kill -9 while idle):
    its last segment was refused ('the archive helper process exited ... a new
    one starts at the next cycle': there is none after STOP), the change log
    trimmed all the same, and a row committed before STOP was in no
    restorable window. Now the last segment is built all the same."""
    svc = archiving.service(state(client))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '1s')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    pid = await wait_helper(svc, None)
    os.kill(pid, signal.SIGKILL)
    reaped(svc.helper)
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await asyncio.sleep(0.02)
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await asyncio.sleep(0.02)
    shown = (await rows(client, "STOP ARCHIVING DATABASE app"))[0]
    assert shown["status"] == "stopped" and shown["last_error"] is None, shown
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{when}')")
    assert [r["id"] for r in await rows(client, "SELECT id FROM r.t ORDER BY id")] == [1, 2]


def test_a_starting_helper_is_not_waited_for() -> None:
    """While a new helper is importing, bodies are built in the server (the
    same bytes), so the first cycles after start-up ship on time; once it says
    READY, bodies come from it."""
    h = BodyHelper()
    try:
        cs = log(random.Random(4), 40)
        body, cpu = h.build(raw(cs).parts())  # the helper was only just started
        assert body == encode_body(cs) and cpu is None
        deadline = time.monotonic() + 60
        while cpu is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
            body, cpu = h.build(raw(cs).parts())
        assert body == encode_body(cs) and cpu >= 0
    finally:
        h.close()


def test_entries_go_over_as_they_are(helper: BodyHelper) -> None:
    """The entries behind an array header are the msgpack of the list of
    Changes, for every size of header; more pieces than one writev takes
    arrive whole and in order."""
    cs = log(random.Random(5), 1500)
    for n in (1, 15, 16, 1500):
        assert msgspec.msgpack.decode(raw(cs[:n]).msgpack(), type=list[Change]) == cs[:n]
    assert len(raw(cs).parts()) > 1024
    assert helper.body(raw(cs).parts())[0] == encode_body(cs)


def test_the_pipes_hold_a_cycle_of_entries(helper: BodyHelper) -> None:
    """Both pipes are enlarged to PIPE_BYTES (1 MiB): a cycle's entries go over
    in a couple of fills, not one wake-up of the helper per 64 KiB."""
    import fcntl

    from storage.archive.helper import PIPE_BYTES
    helper.start()
    proc = helper._proc
    assert proc is not None and proc.stdin is not None and proc.stdout is not None
    for pipe in (proc.stdin, proc.stdout):
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES


def test_a_helper_whose_server_went_first_ends_without_a_traceback() -> None:
    """A server stopped (or killed) while its helper still imported: the
    helper's READY met a closed pipe and it printed a BrokenPipeError
    traceback into the server's log."""
    proc = subprocess.Popen([sys.executable, "-m", "storage.archive.helper"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.close()  # before its imports are done: READY meets no reader
    proc.stdin.close()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0 and b"Traceback" not in err, err.decode(errors="replace")


async def wait_helper(svc: archiving.ArchiveService, not_pid: int | None) -> int:
    """The pid of a running helper other than `not_pid`, once there is one."""
    deadline = time.monotonic() + 10
    while (pid := svc.helper.pid) is None or pid == not_pid:
        assert time.monotonic() < deadline, "no new helper"
        await asyncio.sleep(0.05)
    return pid


async def test_the_helper_stops_with_the_last_archive(client: Any) -> None:
    """The helper (~130 MB) stayed after the last STOP ARCHIVING for as long as
    the server ran, while SHOW ARCHIVES said stopped. Now another archived
    namespace keeps it, the last STOP ends it, and START ARCHIVING starts one
    again whose archive ships."""
    svc = archiving.service(state(client))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "CREATE NAMESPACE b; CREATE TABLE b.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, f"START ARCHIVING DATABASE b TO 'barch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1); INSERT INTO b.t VALUES (1)")
    await wait_shipped(client)
    await wait_shipped(client, "b")
    pid = await wait_helper(svc, None)
    await ok(client, "STOP ARCHIVING DATABASE b")
    assert svc.helper.pid == pid  # app is still archived
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert gone(pid, 5.0) and svc.helper.pid is None
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch2' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    shown = await wait_shipped(client)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    second = await wait_helper(svc, pid)
    await ok(client, "INSERT INTO app.t VALUES (3)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert gone(second, 5.0) and svc.helper.pid is None
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch2'"))[0]
    assert report["is_valid"] is True and report["changes"] == 2, report


async def test_a_stop_and_a_start_at_once_leave_a_helper_that_ships(client: Any) -> None:
    """The last STOP ARCHIVING and a START ARCHIVING of another namespace at
    once: whichever way they interleave, the new archive ships (its bodies
    built in the server while the helper is closed or starting), and its own
    STOP then leaves no helper."""
    svc = archiving.service(state(client))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "CREATE NAMESPACE b; CREATE TABLE b.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    await asyncio.gather(ok(client, "STOP ARCHIVING DATABASE app"),
                         ok(client, f"START ARCHIVING DATABASE b TO 'barch' {FAST}"))
    for i in range(3):
        await ok(client, f"INSERT INTO b.t VALUES ({i})")
        shown = await wait_shipped(client, "b")
        assert shown["status"] == "running" and shown["last_error"] is None, shown
    pid = await wait_helper(svc, None)
    await ok(client, "STOP ARCHIVING DATABASE b")
    assert gone(pid, 5.0) and svc.helper.pid is None


def test_the_helper_imports_neither_duckdb_nor_sqlglot() -> None:
    """Its blocks need storage.types (through storage.buffer), which imported
    storage.spelling, and with it DuckDB and sqlglot, that it never calls:
    ~0.2 s of each helper's ~0.5 s of CPU at start (every START ARCHIVING)."""
    probe = ("import sys, storage.archive.helper\n"
             "print(sorted(m for m in ('duckdb', 'sqlglot', 'storage.spelling') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-P", "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert out.stdout.strip() == "[]", out
