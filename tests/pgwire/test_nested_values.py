"""Values inside a LIST, STRUCT or MAP over the PostgreSQL protocol, written as
the same values at the top of an answer, and INTERVALs Arrow cannot carry."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def test_nested_values_go_as_top_level_values_do(pg: PgServer) -> None:
    """json.dumps(default=str) sent a BLOB as Python's repr ("b'x'"), an INTERVAL
    as [0,1,0], a DECIMAL as "1.0E-8" and a TIMESTAMP_NS cut to milliseconds
    with a Z. Found by trying."""
    cases = [
        ("['x'::BLOB, '\\x00\\xFF'::BLOB]", '["\\\\x78","\\\\x00ff"]'),
        ("{'i': INTERVAL 1 DAY, 'j': INTERVAL '1 hour 30 seconds', 'n': NULL}",
         '{"i":"1 day","j":"01:00:30","n":null}'),
        ("[0.00000001::DECIMAL(10,9)]", '["0.000000010"]'),
        ("{'d': 12.5::DECIMAL(10,2)}", '{"d":"12.50"}'),
        ("['2024-01-01 00:00:00.123456789'::TIMESTAMP_NS, NULL]",
         '["2024-01-01 00:00:00.123456789",null]'),
        ("[TIMESTAMPTZ '2024-01-01 00:00:00.5+00']", '["2024-01-01 00:00:00.5+00"]'),
        ("MAP {'\\x01'::BLOB: [INTERVAL 2 MONTH]}", '[["\\\\x01",["2 mons"]]]'),
        ("[[1.5::DOUBLE, 'nan'::DOUBLE], NULL, []]", '[[1.5,"NaN"],null,[]]'),
        ("[make_timestamp(-43, 3, 15, 1, 2, 3.25), 'infinity'::TIMESTAMP]",
         '["0044-03-15 01:02:03.25 BC","infinity"]'),
        # A REAL as its double (0.10000000149011612), a BIT as its storage bytes (\x04f5).
        ("[0.1::REAL, 16777216::REAL, NULL, 'inf'::REAL]", '[0.1,16777216.0,null,"Infinity"]'),
        ("{'r': 1.5e-7::REAL, 'b': '0101'::BIT}", '{"r":1.5e-07,"b":"0101"}'),
        ("MAP {'1'::BIT: ['10101010101'::BIT]}", '[["1",["10101010101"]]]'),
    ]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for expr, text in cases:
            for binary in (0, 1):  # json's binary form is its text
                res = conn.pgconn.exec_params(f"SELECT {expr} AS v".encode(), [],
                                              result_format=binary)
                assert res.get_value(0, 0) == text.encode(), (expr, binary)


def test_a_bit_at_the_top_is_its_text(pg: PgServer) -> None:
    """A BIT went as its storage bytes, `\\x04f5` for '0101', where DuckDB's
    text of it is '0101'; a BLOB stays bytea."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for binary in (False, True):
            row = conn.execute("SELECT '0101'::BIT AS b, NULL::BIT AS n, 'x'::BLOB AS blob",
                               binary=binary).fetchone()
            assert row == ("0101", None, b"x"), binary
            row = conn.execute("SELECT 0.1::REAL AS r, [0.1::REAL] AS l", binary=binary).fetchone()
            assert row is not None and row[1] == [0.1], binary


def test_an_interval_past_292_years_of_time_is_refused_not_wrapped(pg: PgServer) -> None:
    """Arrow's month_day_nano holds DuckDB's microseconds * 1000 and wrapped:
    to_hours(2600000) went as -2524095:34:33.709551616 in text and binary."""
    sql = "SELECT to_hours(2600000) AS v"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for binary in (False, True):
            with pytest.raises(psycopg.errors.DatetimeFieldOverflow, match="column 'v'"):
                conn.execute(sql, binary=binary)
            with pytest.raises(psycopg.errors.DatetimeFieldOverflow):
                conn.execute("SELECT [to_seconds(%s)] AS v", (10_000_000_000,), binary=binary)
        assert conn.execute("SELECT to_hours(2600000)::VARCHAR").fetchone() == ("2600000:00:00",)

    async def run() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            with pytest.raises(asyncpg.exceptions.DatetimeFieldOverflowError):
                await conn.fetchrow(sql)
            row = await conn.fetchrow("SELECT to_hours(2562047) AS v")
            assert row["v"] == "2562047:00:00"
        finally:
            await conn.close()

    asyncio.run(run())
