"""Date and time text in a parameter is read as the same text over HTTP is
(storage/timetext.py: only forms DuckDB's CAST reads alike): psycopg's str
'2024-W23-6' into a TIMESTAMP was stored as 2024-06-08 ('20240601',
'2024-06-01T12', '…12:00:00,5' too), rows whose own literal in a WHERE
is a Conversion Error; a DATE's '2024-06-01 12:00:00 BC' was stored as the
AD day. Dates and times sent by drivers (psycopg text and binary, asyncpg)
are read as before."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

UTC = dt.UTC


def _setup(pg: PgServer) -> None:
    status, body = pg.proc.post(
        "CREATE NAMESPACE IF NOT EXISTS tt; CREATE TABLE IF NOT EXISTS tt.t (k BIGINT PRIMARY KEY, "
        "ts TIMESTAMP, d DATE)")
    assert status == 200, body


@pytest.mark.parametrize("column, text", [
    ("ts", "2024-W23-6"), ("ts", "20240601"), ("ts", "2024-06-01T12"),
    ("ts", "2024-06-01 12:00:00,5"), ("d", "2024-06-01 12:00:00 BC"), ("d", "2024-06-01 BC"),
    ("d", "20240601"),
])
def test_text_http_refuses_is_refused_as_a_parameter(pg: PgServer, column: str,
                                                      text: str) -> None:
    _setup(pg)
    status, body = pg.proc.post(f"INSERT INTO tt.t (k, {column}) VALUES (1, '{text}')")
    assert status == 400, body
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for prepare in (False, True):
            with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="invalid input"):
                conn.execute(f"INSERT INTO tt.t (k, {column}) VALUES (1, %s)", (text,),
                             prepare=prepare)
            with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="invalid input"):
                conn.execute(f"SELECT k FROM tt.t WHERE {column} = %s", (text,), prepare=prepare)
        assert conn.execute("SELECT count(*) FROM tt.t WHERE k = 1").fetchone() == (0,)


def test_dates_and_times_from_drivers_are_read_as_before(pg: PgServer) -> None:
    _setup(pg)
    values = [
        (dt.datetime(2024, 6, 1, 12, 0, 0, 123456), dt.date(2024, 6, 1)),
        (dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
         dt.date(999, 1, 1)),
        (dt.datetime(1, 1, 1, 0, 0), dt.date(1, 1, 1)),
    ]
    want = [(v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC), d) for v, d in values]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for binary in (False, True):
            conn.execute("DELETE FROM tt.t WHERE k > 0")
            for k, (ts, d) in enumerate(values, 10):
                conn.execute("INSERT INTO tt.t (k, ts, d) VALUES (%s, %s, %s)", (k, ts, d),
                             binary=binary)
            got = conn.execute("SELECT ts, d FROM tt.t ORDER BY k").fetchall()
            assert got == want
        texts = [("2024-06-01 12:00:00.5+05:30", "2024-06-01 12:00:00 "),  # str, open types
                 ("2024-06-01T12:00:00Z", " 2024-06-01"), ("2024-06-01", "2024-06-01T23:00:00Z")]
        conn.execute("DELETE FROM tt.t WHERE k > 0")
        for k, (ts, d) in enumerate(texts, 20):
            conn.execute("INSERT INTO tt.t (k, ts, d) VALUES (%s, %s, %s)", (k, ts, d))
        assert conn.execute("SELECT ts::VARCHAR, d FROM tt.t ORDER BY k").fetchall() == [
            ("2024-06-01 06:30:00.5", dt.date(2024, 6, 1)),
            ("2024-06-01 12:00:00", dt.date(2024, 6, 1)),
            ("2024-06-01 00:00:00", dt.date(2024, 6, 1))]

    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            await conn.execute("DELETE FROM tt.t WHERE k > 0")
            for k, (ts, d) in enumerate(values[:2], 30):  # (asyncpg sends year 1 as -infinity)
                await conn.execute("INSERT INTO tt.t (k, ts, d) VALUES ($1, $2, $3)", k, ts, d)
            rows = await conn.fetch("SELECT ts, d FROM tt.t ORDER BY k")
            assert [tuple(r) for r in rows] == want[:2]
            assert await conn.fetchval("SELECT count(*) FROM tt.t WHERE d = $1",
                                       dt.date(999, 1, 1)) == 1
        finally:
            await conn.close()

    asyncio.run(main())
