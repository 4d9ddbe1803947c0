"""Dates and timestamps outside Python's years 1-9999 over the PostgreSQL
protocol: in text as PostgreSQL writes them, in binary as its integers, and
past PostgreSQL's own range 22008 in binary (never XX000)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import struct

import asyncpg
import psycopg
import pytest
from psycopg.adapt import Loader
from psycopg.pq import Format

from tests.pgwire.conftest import PgServer
from tests.pgwire.test_protocol import _msg, _read_all, _startup

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

WIDE = ("SELECT '20000-01-01'::DATE AS d, 'infinity'::TIMESTAMP AS t, "
        "'-infinity'::DATE AS nd, make_date(-43, 3, 15) AS ides, "
        "TIMESTAMPTZ '20000-01-01 01:02:03.5+00' AS far, "
        "make_timestamp(-43, 3, 15, 1, 2, 3.25) AS bct, '-infinity'::TIMESTAMP AS nt")
TEXT = ("20000-01-01", "infinity", "-infinity", "0044-03-15 BC", "20000-01-01 01:02:03.5+00",
        "0044-03-15 01:02:03.25+00 BC", "-infinity")
# 400 Gregorian years are always 146097 days: 20000-01-01 is 45 cycles after
# 2000-01-01, and -43-03-15 (44 BC) lies as far before it as 357-03-15 before 2400-01-01.
DAYS_20000 = 45 * 146097
DAYS_IDES = -(dt.date(2400, 1, 1) - dt.date(357, 3, 15)).days
DAY_US = 86_400_000_000
BINARY = (DAYS_20000, 2**63 - 1, -2**31, DAYS_IDES, DAYS_20000 * DAY_US + 3_723_500_000,
          DAYS_IDES * DAY_US + 3_723_250_000, -2**63)


class _RawText(Loader):
    def load(self, data: bytes | bytearray | memoryview) -> str:
        return bytes(data).decode()


class _RawInt(Loader):
    format = Format.BINARY

    def load(self, data: bytes | bytearray | memoryview) -> int:
        return int.from_bytes(data, "big", signed=True)


def _raw(conn: psycopg.Connection, loader: type[Loader]) -> None:
    for name in ("date", "timestamp", "timestamptz"):
        conn.adapters.register_loader(name, loader)


def test_text_is_as_postgresql_writes_it(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        _raw(conn, _RawText)
        assert conn.execute(WIDE).fetchone() == TEXT
        cur = conn.cursor()
        cur.execute(WIDE.replace("SELECT", "SELECT %s::BIGINT AS n,", 1), (1,))  # extended
        assert cur.fetchone() == (1, *TEXT)
        # Past PostgreSQL's range (4713 BC) text still says what the value is.
        assert conn.execute("SELECT make_date(-5000, 1, 1)").fetchone() == ("5001-01-01 BC",)


def test_simple_query_on_a_raw_socket(pg: PgServer) -> None:
    with socket.create_connection(("127.0.0.1", pg.port)) as sock:
        sock.sendall(_startup())
        _read_all(sock)
        sock.sendall(_msg(b"Q", WIDE.encode() + b"\x00"))
        messages = _read_all(sock)
    assert [tag for tag, _ in messages] == [b"T", b"D", b"C", b"Z"]
    body = messages[1][1]
    fields, at = [], 2
    for _ in range(struct.unpack("!h", body[:2])[0]):
        n = struct.unpack("!i", body[at:at + 4])[0]
        fields.append(body[at + 4:at + 4 + n].decode())
        at += 4 + n
    assert tuple(fields) == TEXT


def test_binary_is_postgresqls_integers(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        _raw(conn, _RawInt)
        cur = conn.cursor(binary=True)
        cur.execute(WIDE)
        assert cur.fetchone() == BINARY
        with pytest.raises(psycopg.errors.DatetimeFieldOverflow, match="5001-01-01 BC"):
            cur.execute("SELECT make_date(-5000, 1, 1)")
        with pytest.raises(psycopg.errors.DatetimeFieldOverflow):  # 5881580 AD > 5874897 AD
            cur.execute("SELECT '5881580-07-10'::DATE")
        cur.execute("SELECT DATE '2026-01-02'")  # the connection goes on
        assert cur.fetchone() == ((dt.date(2026, 1, 2) - dt.date(2000, 1, 1)).days,)


def test_asyncpg_reads_infinity_and_gets_22008_past_the_range(pg: PgServer) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            row = await conn.fetchrow("SELECT 'infinity'::DATE AS a, '-infinity'::DATE AS b, "
                                      "'infinity'::TIMESTAMP AS c, '-infinity'::TIMESTAMPTZ AS d")
            assert row["a"] == dt.date.max and row["b"] == dt.date.min
            assert row["c"].replace(tzinfo=None) == dt.datetime.max
            assert row["d"].replace(tzinfo=None) == dt.datetime.min
            with pytest.raises(asyncpg.exceptions.DatetimeFieldOverflowError):
                await conn.fetchval("SELECT make_date(-5000, 1, 1)")
            assert await conn.fetchval("SELECT $1::BIGINT", 7) == 7
        finally:
            await conn.close()

    asyncio.run(main())


def test_a_restored_far_date_reads_back(pg: PgServer) -> None:
    """A table holding such a value (INSERT refuses them; a restored file may
    hold one) reads in full: the in-range value alongside it as well."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE wide")
        conn.execute("CREATE TABLE wide.t (id BIGINT PRIMARY KEY, d DATE)")
        conn.execute("INSERT INTO wide.t VALUES (1, '2020-01-02'), (2, NULL)")
        _raw(conn, _RawText)
        rows = conn.execute("SELECT d FROM wide.t UNION ALL SELECT '20000-01-01'::DATE "
                            "ORDER BY d NULLS LAST").fetchall()
        assert rows == [("2020-01-02",), ("20000-01-01",), (None,)]
