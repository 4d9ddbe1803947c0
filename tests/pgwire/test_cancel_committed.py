"""A CancelRequest that comes once the statement has taken effect (its write
committed, its job ended `completed`) does not turn its answer into 57014:
the client gets the statement's own answer (its command tag, its rows). The
connection's cancelled flag was set whenever it was busy, and the simple
Query's check for "a cancel between two of its statements" ran after its
last statement too: an UPDATE … v = v + 1, an INSERT … SELECT, a BACKUP
(job `completed`, backup listed) were answered 57014, and a client that
retried applied the write twice. Extended protocol alike: a BACKUP runs at
Describe(portal), and its Execute was refused with 57014. A cancel that
came before the statement had started its job let the job run on while the
statement was abandoned with 57014: the job is now stopped as it starts.

The race is made certain in process (`Hold`): the executor's entry point is
wrapped so that a statement, run to its end, is answered only after the
test's CancelRequest has been taken; or the job runner's, so that the job
starts only after it."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from server.pgwire import connection
from server.pgwire.server import PgServer
from tests.helpers import ok, rows, state
from tests.pgwire.test_protocol import _fields, _msg, _startup

SETUP = ["CREATE NAMESPACE cx", "CREATE TABLE cx.t (id BIGINT PRIMARY KEY, v BIGINT)",
         "INSERT INTO cx.t SELECT range, 0 FROM range(100)",
         "BACKUP DATABASE cx TO 'first'"]


class Hold:
    """`owner.name`, a coroutine function, wrapped: a call whose arguments
    `picked` is held until `released` is set, after it has returned (or,
    `before`, before it runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str,
                 picked: Callable[..., bool], before: bool = False) -> None:
        self.reached, self.released = asyncio.Event(), asyncio.Event()
        real = getattr(owner, name)

        async def held(*args: Any, **kwargs: Any) -> Any:
            if before and picked(*args):
                await self._wait()
            result = await real(*args, **kwargs)
            if not before and picked(*args):
                await self._wait()
            return result

        monkeypatch.setattr(owner, name, held)

    async def _wait(self) -> None:
        self.reached.set()
        await self.released.wait()

    @classmethod
    def answer(cls, monkeypatch: pytest.MonkeyPatch, prefix: str) -> Hold:
        """The executor as pgwire calls it: the statement that starts with
        `prefix` runs to its end, and is answered only once released."""
        return cls(monkeypatch, connection, "execute",
                   lambda cairn, session, text: text.lstrip().upper().startswith(prefix))


class Raw:
    """One PostgreSQL connection on raw messages, on the test's loop."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.key = b""

    @classmethod
    async def open(cls, port: int) -> Raw:
        raw = cls(*await asyncio.open_connection("127.0.0.1", port))
        raw.writer.write(_startup())
        raw.key = dict(await raw.read())[b"K"]
        return raw

    async def read(self) -> list[tuple[bytes, bytes]]:
        """Messages up to ReadyForQuery (notices left out)."""
        out = []
        while True:
            head = await asyncio.wait_for(self.reader.readexactly(5), 30)
            body = await self.reader.readexactly(struct.unpack("!i", head[1:])[0] - 4)
            if head[:1] != b"N":
                out.append((head[:1], body))
            if head[:1] == b"Z":
                return out

    async def cancel(self, port: int) -> None:
        """A CancelRequest, returned once the server has taken it (it closes)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack("!ii", 16, 80877102) + self.key)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()

    def close(self) -> None:
        self.writer.write(_msg(b"X"))
        self.writer.close()


def _query(sql: str) -> bytes:
    return _msg(b"Q", sql.encode() + b"\x00")


def _extended(sql: str) -> bytes:
    """Parse, Bind, Describe(portal), Execute, Sync: as psycopg with parameters."""
    return (_msg(b"P", b"\x00" + sql.encode() + b"\x00\x00\x00")
            + _msg(b"B", b"\x00\x00" + struct.pack("!hhh", 0, 0, 0))
            + _msg(b"D", b"P\x00") + _msg(b"E", b"\x00\x00\x00\x00\x00") + _msg(b"S"))


@pytest.fixture
async def cx(client: Any) -> AsyncIterator[Any]:
    """The in-process server, set up, with a PostgreSQL listener on a port of
    its own (0: the system's pick, so no other test can take it first)."""
    for sql in SETUP:
        await ok(client, sql)
    pg = PgServer(state(client))
    await pg.start()
    client.pg_port = pg.port
    try:
        yield client
    finally:
        await pg.close()


async def _cancelled_after(client: Any, monkeypatch: pytest.MonkeyPatch, prefix: str,
                           sent: bytes) -> list[tuple[bytes, bytes]]:
    """Send `sent`; once its statement starting with `prefix` has run to its
    end, cancel; then let it be answered, and return the answer."""
    return await _cancelled_at(client, Hold.answer(monkeypatch, prefix), sent)


async def _cancelled_at(client: Any, hold: Hold, sent: bytes) -> list[tuple[bytes, bytes]]:
    """Send `sent`; once `hold` is reached, cancel; release it, and return the answer."""
    port = client.pg_port
    raw = await Raw.open(port)
    try:
        raw.writer.write(sent)
        await asyncio.wait_for(hold.reached.wait(), 30)
        await raw.cancel(port)
        hold.released.set()
        return await raw.read()
    finally:
        raw.close()


async def _v_sum(client: Any) -> int:
    return int((await rows(client, "SELECT sum(v) AS s FROM cx.t"))[0]["s"])


async def _last_job(client: Any, kind: str) -> dict[str, Any]:
    return (await rows(client, f"SELECT status, backup_id FROM system.jobs WHERE job_type = "
                               f"'{kind}' ORDER BY created_at DESC LIMIT 1"))[0]


async def _update(client: Any) -> None:
    assert await _v_sum(client) == 100  # applied once


async def _insert(client: Any) -> None:
    assert len(await rows(client, "SELECT id FROM cx.t")) == 150


async def _backup(client: Any) -> None:
    job = await _last_job(client, "backup")
    assert job["status"] == "completed"
    listed = await rows(client, "SHOW BACKUPS IN 'second'")
    assert [b["backup_id"] for b in listed] == [job["backup_id"]]


async def _restored(client: Any) -> None:
    assert (await _last_job(client, "restore"))["status"] == "completed"
    assert len(await rows(client, "SELECT id FROM cz.t")) == 100


async def _made(client: Any) -> None:
    assert [t["table_name"] for t in await rows(client, "SHOW TABLES IN cx")] == ["t", "u"]


CASES: dict[str, tuple[str, str, Callable[[Any], Awaitable[None]]]] = {
    "update": ("UPDATE", "UPDATE cx.t SET v = v + 1", _update),
    "insert select": ("INSERT", "INSERT INTO cx.t SELECT range, 0 FROM range(100, 150)", _insert),
    "backup": ("BACKUP", "BACKUP DATABASE cx TO 'second'", _backup),
    "restore": ("RESTORE", "RESTORE DATABASE cx FROM 'first' AS cz", _restored),
    "create table": ("CREATE", "CREATE TABLE cx.u (id BIGINT PRIMARY KEY)", _made),
}


@pytest.mark.parametrize("protocol", ["simple", "extended"])
@pytest.mark.parametrize("case", list(CASES))
async def test_a_cancel_after_the_statement_took_effect_gets_its_answer(
        cx: Any, monkeypatch: pytest.MonkeyPatch, case: str, protocol: str) -> None:
    prefix, sql, took_effect = CASES[case]
    msgs = await _cancelled_after(cx, monkeypatch, prefix,
                                  _query(sql) if protocol == "simple" else _extended(sql))
    assert b"E" not in [m[0] for m in msgs], [_fields(b) for t, b in msgs if t == b"E"]
    assert [m[0] for m in msgs][-2:] == [b"C", b"Z"]
    await took_effect(cx)


@pytest.mark.parametrize("kind", ["flush", "verify"])
async def test_a_cancel_after_a_job_completed_gets_its_rows(
        cx: Any, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    first = (await rows(cx, "SHOW BACKUPS IN 'first'"))[0]["backup_id"]
    sql = {"flush": "FLUSH TABLE cx.t", "verify": f"VERIFY BACKUP '{first}' IN 'first'"}[kind]
    msgs = await _cancelled_after(cx, monkeypatch, kind.upper(), _query(sql))
    assert [m[0] for m in msgs] == [b"T", b"D", b"C", b"Z"], msgs
    assert (await _last_job(cx, kind))["status"] == "completed"


async def test_a_cancel_between_statements_of_a_query_answers_each_as_it_went(
        cx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statement that ran is answered by its tag; the rest never starts: 57014."""
    msgs = await _cancelled_after(cx, monkeypatch, "UPDATE",
                                  _query("UPDATE cx.t SET v = v + 1; UPDATE cx.t SET v = v + 5"))
    assert [m[0] for m in msgs] == [b"C", b"E", b"Z"], msgs
    assert msgs[0][1] == b"UPDATE 100\x00"
    assert _fields(msgs[1][1])["C"] == "57014"
    assert await _v_sum(cx) == 100


async def test_a_cancel_after_the_last_statement_of_a_query_answers_all(
        cx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    msgs = await _cancelled_after(cx, monkeypatch, "UPDATE",
                                  _query("INSERT INTO cx.t VALUES (500, 0); "
                                         "UPDATE cx.t SET v = v + 1"))
    assert [m[0] for m in msgs] == [b"C", b"C", b"Z"], msgs
    assert await _v_sum(cx) == 101


async def test_a_cancel_before_the_statement_started_its_job_cancels_the_job(
        cx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancel came while the BACKUP had no job yet: the statement was
    abandoned after CANCEL_GRACE (57014) while its job, started meanwhile,
    ran on and completed, its backup listed. Its job is now asked to stop as
    it is recorded: it ends `cancelled` having done nothing, and the answer is
    57014."""
    hold = Hold(monkeypatch, state(cx).jobs, "run", lambda kind, *_: kind == "backup",
                before=True)
    msgs = await _cancelled_at(cx, hold, _query("BACKUP DATABASE cx TO 'second'"))
    assert [m[0] for m in msgs] == [b"E", b"Z"], msgs
    assert _fields(msgs[0][1])["C"] == "57014"
    assert (await _last_job(cx, "backup"))["status"] == "cancelled"
    assert [b["target"].rsplit("/", 1)[1] for b in await rows(cx, "SHOW BACKUPS")] == ["first"]


async def test_a_cancel_before_a_detached_backup_started_its_job_is_57014(
        cx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A detached BACKUP cancelled before it started its job: the job was
    stopped as it was recorded (it ended `cancelled`, no backup made), and
    the client was still told the statement succeeded, with the job's row
    `queued`. Its answer is 57014 now, as the form that waits gets."""
    hold = Hold(monkeypatch, state(cx).jobs, "run", lambda kind, *_: kind == "backup",
                before=True)
    msgs = await _cancelled_at(
        cx, hold, _query("BACKUP DATABASE cx TO 'second' WITH (detached = true)"))
    assert [m[0] for m in msgs] == [b"E", b"Z"], msgs
    assert _fields(msgs[0][1])["C"] == "57014"
    for _ in range(200):  # the detached job ends by itself
        job = await _last_job(cx, "backup")
        if job["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "cancelled"
    assert [b["target"].rsplit("/", 1)[1] for b in await rows(cx, "SHOW BACKUPS")] == ["first"]
