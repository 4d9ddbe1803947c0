"""An integer literal past HUGEINT over the PostgreSQL protocol: the same
refusal (22023) on a write as on a query, where INSERT ... VALUES stored it
and `SELECT k ... WHERE tx = <literal>` ran while `SELECT *` was refused;
the least HUGEINT is stored and read back."""

from __future__ import annotations

import psycopg
import pytest

from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)

FIFTY = "12345678901234567890123456789012345678901234567890"
LEAST = -(1 << 127)


def test_a_literal_past_hugeint_is_refused_alike_over_pgwire(pg: PgServer) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE NAMESPACE bigpg; CREATE TABLE bigpg.t (k INT PRIMARY KEY, "
                     "tx TEXT, j JSON)")
        messages = set()
        for text in (f"INSERT INTO bigpg.t VALUES (1, {FIFTY}, NULL)",
                     f"INSERT INTO bigpg.t VALUES (1, NULL, {FIFTY}), (2, 'a', NULL)",
                     f"UPDATE bigpg.t SET tx = {FIFTY}",
                     f"SELECT k FROM bigpg.t WHERE tx = {FIFTY}",
                     f"SELECT * FROM bigpg.t WHERE tx = {FIFTY}",
                     f"CREATE TABLE bigpg.u (k INT PRIMARY KEY, tx TEXT DEFAULT {FIFTY})"):
            with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
                conn.execute(text)
            messages.add(str(caught.value).splitlines()[0])
        assert len(messages) == 1 and "past every integer type" in messages.pop()
        assert conn.execute("SELECT count(*) FROM bigpg.t").fetchone() == (0,)
        conn.execute(f"INSERT INTO bigpg.t VALUES (1, {LEAST}, {LEAST}); "
                     f"INSERT INTO bigpg.t SELECT 2, {LEAST}, {LEAST}")
        got = conn.execute(f"SELECT k, tx, j FROM bigpg.t WHERE tx = {LEAST} ORDER BY k")
        assert got.fetchall() == [(1, str(LEAST), LEAST), (2, str(LEAST), LEAST)]
