"""Describe in the extended protocol: what it says before Execute, and that
it runs nothing that writes."""

from __future__ import annotations

import asyncio
import struct

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _connect, _fields, _msg, _read_all


def _parse(sql: bytes) -> bytes:
    return _msg(b"P", b"\x00" + sql + b"\x00" + struct.pack("!h", 0))


BIND = _msg(b"B", b"\x00\x00" + struct.pack("!hhh", 0, 0, 0))


def test_describing_a_write_portal_does_not_run_it(pg: PgServer) -> None:
    """Describe(portal) ran the portal's statement: an INSERT bound, described
    and closed without an Execute was written (PostgreSQL runs nothing)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS dsc")
        conn.execute("CREATE TABLE IF NOT EXISTS dsc.t (id BIGINT PRIMARY KEY, v TEXT)")
    sock = _connect(pg)
    # Executed, it writes, and says so.
    sock.sendall(_parse(b"INSERT INTO dsc.t VALUES (1, 'a')") + BIND + _msg(b"D", b"P\x00")
                 + _msg(b"E", b"\x00\x00\x00\x00\x00") + _msg(b"S"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"1", b"2", b"n", b"C", b"Z"], msgs
    assert msgs[3][1] == b"INSERT 0 1\x00"
    for sql in (b"INSERT INTO dsc.t VALUES (4242, 'never executed')",
                b"-- a comment first\nUPDATE dsc.t SET v = 'x'",
                b"DELETE FROM dsc.t"):
        sock.sendall(_parse(sql) + BIND + _msg(b"D", b"P\x00") + _msg(b"C", b"P\x00")
                     + _msg(b"S"))
        assert [m[0] for m in _read_all(sock)] == [b"1", b"2", b"n", b"3", b"Z"]
    sock.close()
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT id, v FROM dsc.t").fetchall() == [(1, "a")]


@pytest.mark.parametrize("sql", [
    b"(SELECT 1 AS a)",
    b"SELECT 1 AS a -- the answer",
    b"  ( (SELECT 1 AS a) ) -- twice",
])
def test_a_query_is_described_as_returning_rows(pg: PgServer, sql: bytes) -> None:
    """A parenthesised query was described as NoData (then rows came: asyncpg
    failed); one ending in a `--` comment was 42601 (the comment swallowed the
    probe's closing parenthesis)."""
    sock = _connect(pg)
    sock.sendall(_parse(sql) + _msg(b"D", b"S\x00") + BIND
                 + _msg(b"E", b"\x00\x00\x00\x00\x00") + _msg(b"S"))
    msgs = _read_all(sock)
    errors = [_fields(b) for t, b in msgs if t == b"E"]
    assert errors == [], errors
    assert [m[0] for m in msgs] == [b"1", b"t", b"T", b"2", b"D", b"C", b"Z"], msgs
    sock.close()


@pytest.mark.parametrize(("sql", "rows"), [
    (b"EXPLAIN SELECT 1", None),
    (b"SUMMARIZE dsc.s", None),
    (b"SUMMARIZE SELECT id FROM dsc.s -- one column", 1),
    (b"PIVOT (SELECT 1 AS k, 2 AS v) ON k USING sum(v)", 1),
    (b"UNPIVOT (SELECT 1 AS k, 2 AS v) ON k, v INTO NAME n VALUE w", 2),
])
def test_read_only_commands_are_described_with_their_columns(pg: PgServer, sql: bytes,
                                                             rows: int | None) -> None:
    """EXPLAIN, SUMMARIZE, PIVOT and UNPIVOT were described as NoData, then
    rows came (asyncpg's fetch of any of them failed). Their columns are
    those Execute then sends."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS dsc")
        conn.execute("CREATE TABLE IF NOT EXISTS dsc.s (id BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("DELETE FROM dsc.s")
        conn.execute("INSERT INTO dsc.s VALUES (1, 'a'), (2, 'b')")
        executed = conn.execute(sql.decode())
        assert executed.description is not None
        want = [d.name for d in executed.description]
        if rows is not None:
            assert len(executed.fetchall()) == rows
    sock = _connect(pg)
    sock.sendall(_parse(sql) + _msg(b"D", b"S\x00") + _msg(b"S"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"1", b"t", b"T", b"Z"], msgs
    assert _names(msgs[2][1]) == want
    sock.close()


def _names(row_description: bytes) -> list[str]:
    count, pos, names = struct.unpack("!h", row_description[:2])[0], 2, []
    for _ in range(count):
        end = row_description.index(b"\x00", pos)
        names.append(row_description[pos:end].decode())
        pos = end + 1 + 18  # table oid, column, type oid, size, modifier, format
    return names


def test_describing_a_portal_runs_only_a_read(pg: PgServer) -> None:
    """Describe(portal) ran anything not starting with INSERT, UPDATE or
    DELETE: a portal described and closed, never executed, had inserted (a
    `WITH … INSERT`), dropped or created a table, run a backup, applied a SET.
    Only a read runs before Execute (for its columns); the rest is NoData, or
    EXPLAIN's columns for EXPLAIN ANALYZE of a write."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS dsp")
        conn.execute("CREATE TABLE IF NOT EXISTS dsp.t (id BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO dsp.t VALUES (1, 'a')")
        jobs = conn.execute("SELECT count(*) FROM system.jobs").fetchone()
    sock = _connect(pg)
    for sql in (b"WITH c AS (SELECT 1) INSERT INTO dsp.t VALUES (10, 'never executed')",
                b"DROP TABLE dsp.t",
                b"CREATE TABLE dsp.u (id BIGINT PRIMARY KEY)",
                b"SET application_name = 'described'",
                b"BEGIN"):
        sock.sendall(_parse(sql) + BIND + _msg(b"D", b"P\x00") + _msg(b"C", b"P\x00")
                     + _msg(b"S"))
        msgs = _read_all(sock)
        assert [m[0] for m in msgs] == [b"1", b"2", b"n", b"3", b"Z"], (sql, msgs)
        assert msgs[-1] == (b"Z", b"I"), msgs
    sock.sendall(_parse(b"EXPLAIN ANALYZE DELETE FROM dsp.t") + BIND + _msg(b"D", b"P\x00")
                 + _msg(b"C", b"P\x00") + _msg(b"S"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"1", b"2", b"T", b"3", b"Z"], msgs
    assert _names(msgs[2][1]) == ["explain_key", "explain_value"]
    sock.sendall(_msg(b"Q", b"SHOW application_name\x00"))
    assert (b"D", struct.pack("!hi", 1, 0)) in _read_all(sock)  # still ''
    # A read is still described with its columns, and run once.
    sock.sendall(_parse(b"SELECT id, v FROM dsp.t") + BIND + _msg(b"D", b"P\x00")
                 + _msg(b"E", b"\x00\x00\x00\x00\x00") + _msg(b"S"))
    msgs = _read_all(sock)
    assert [m[0] for m in msgs] == [b"1", b"2", b"T", b"D", b"C", b"Z"], msgs
    assert _names(msgs[2][1]) == ["id", "v"] and msgs[4][1] == b"SELECT 1\x00"
    sock.close()
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT id, v FROM dsp.t").fetchall() == [(1, "a")]
        assert [r[1] for r in conn.execute("SHOW TABLES IN dsp").fetchall()] == ["t"]
        assert conn.execute("SELECT count(*) FROM system.jobs").fetchone() == jobs


def test_a_job_statement_over_the_extended_protocol_has_its_columns(pg: PgServer) -> None:
    """Described as NoData (to run nothing before Execute), BACKUP, RESTORE,
    VERIFY and FLUSH then sent rows: psycopg with parameters failed with
    'server sent data ("D" message) without prior row description', after the
    job had run. Their rows cannot be known without running them: a
    Describe(portal) runs them, as before."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS dsj")
        conn.execute("CREATE TABLE IF NOT EXISTS dsj.t (id BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO dsj.t VALUES (1, 'a')")
        cur = conn.execute("FLUSH TABLE dsj.t", prepare=True)
        assert cur.description is not None and cur.fetchall()
        cur = conn.execute("BACKUP DATABASE dsj TO 'dsj-target' WITH (label = %s)", ("ext",))
        names = [d.name for d in cur.description or []]
        [row] = cur.fetchall()
        backup = dict(zip(names, row, strict=True))
        assert backup["status"] == "completed", backup
        cur = conn.execute("VERIFY BACKUP %s", (backup["backup_id"],), prepare=True)
        assert dict(zip([d.name for d in cur.description or []], cur.fetchone() or (),
                        strict=True))["is_valid"] is True
        labels = [r for r in conn.execute("SHOW BACKUPS IN 'dsj-target'").fetchall()]
        assert len(labels) == 1  # run once, at the Describe, not again at Execute


def test_a_with_before_a_write_is_the_write(pg: PgServer) -> None:
    """A `WITH … INSERT` with parameters was described as a query (run as
    `SELECT * FROM (…) LIMIT 0`: 42501 "INSERT is not allowed in a query", so
    asyncpg could not run it), and any `WITH … INSERT` completed with the tag
    `WITH C`, not `INSERT 0 n` (the client's row count was -1)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE IF NOT EXISTS dsw")
        conn.execute("CREATE TABLE IF NOT EXISTS dsw.t (id BIGINT PRIMARY KEY, v TEXT)")
        conn.execute("DELETE FROM dsw.t")

    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            status = await conn.execute(
                "WITH c AS (SELECT 1) INSERT INTO dsw.t VALUES ($1, $2)", 1, "extended")
            assert status == "INSERT 0 1"
        finally:
            await conn.close()

    asyncio.run(main())
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        cur = conn.execute("WITH src AS (SELECT 2 AS a, 'x' AS b UNION ALL SELECT 3, 'y') "
                           "INSERT INTO dsw.t (id, v) SELECT a, b FROM src")  # simple protocol
        assert (cur.statusmessage, cur.rowcount) == ("INSERT 0 2", 2)
        cur = conn.execute("WITH c AS (SELECT %s AS a) INSERT INTO dsw.t SELECT a, 'w' FROM c",
                           (4,))  # extended: Describe(portal) runs nothing, Execute writes
        assert (cur.statusmessage, cur.rowcount) == ("INSERT 0 1", 1)
        assert conn.execute("SELECT id, v FROM dsw.t ORDER BY id").fetchall() == [
            (1, "extended"), (2, "x"), (3, "y"), (4, "w")]
