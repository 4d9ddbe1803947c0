"""A `$n` compared with an aggregate or function of a column, or with a
system table's column, takes that value's type, as PostgreSQL gives it: it
was typed text, so asyncpg could not prepare `HAVING sum(k) > $1` or
`WHERE coalesce(n, 0) = $1` (DuckDB refuses to compare a number with text).
`LIKE $1 ESCAPE $2` was 42601 "unexpected 'CAST'" at Describe, naming text
the client never wrote."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest
import sqlglot
from sqlglot import exp

from server.pgwire import param_guess, params
from server.pgwire import types as t
from storage import scopes
from tests.pgwire.conftest import PgServer

SHARE_PG = True  # the test process's shared `cairn serve` (tests/pgwire/conftest.py)


def test_asyncpg_prepares_comparisons_with_aggregates_and_functions(pg: PgServer) -> None:
    status, body = pg.proc.post(
        "CREATE NAMESPACE sx; CREATE TABLE sx.s (k BIGINT PRIMARY KEY, v TEXT, n INT);"
        "INSERT INTO sx.s VALUES (1, 'a%', 1), (2, 'ab', NULL)")
    assert status == 200, body

    async def main() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            cases = {
                "SELECT k FROM sx.s GROUP BY k HAVING sum(k) > $1 ORDER BY k":
                    (["numeric"], (1,), [2]),
                "SELECT k FROM sx.s GROUP BY k HAVING count(*) = $1 AND sum(n) >= $2":
                    (["int8", "int8"], (1, 1), [1]),
                "SELECT k FROM sx.s WHERE coalesce(n, 0) = $1": (["int4"], (0,), [2]),
                "SELECT k FROM sx.s WHERE v LIKE $1 ESCAPE $2": (["text", "text"],
                                                                  ("a!%", "!"), [1]),
                "SELECT count(*) AS k FROM system.jobs WHERE rows > $1 AND job_type = $2":
                    (["int8", "text"], (-1, "nothing"), [0]),
            }
            for sql, (kinds, args, keys) in cases.items():
                stmt = await conn.prepare(sql)
                assert [p.name for p in stmt.get_parameters()] == kinds, sql
                assert [r["k"] for r in await conn.fetch(sql, *args)] == keys, sql
            assert await conn.fetchval("SELECT avg(k) FROM sx.s HAVING avg(k) > $1",
                                       Decimal("1.25")) == 1.5
        finally:
            await conn.close()

    asyncio.run(main())


def test_a_column_of_no_one_type_still_makes_text() -> None:
    tables = {("a", "s"): {"k": "BIGINT", "v": "TEXT", "d": "DOUBLE"}}
    lookup = lambda ns, name: tables.get((ns or "a", name))  # noqa: E731
    cases = {
        "SELECT k FROM a.s WHERE $1 IN (k, v)": [t.TEXT],
        "SELECT k FROM a.s WHERE $1 IN (k, k + 1)": [t.INT8],  # `k + 1`: passed over
        "SELECT k FROM a.s WHERE greatest(k, v) = $1": [t.TEXT],
        "SELECT k FROM a.s WHERE sum(d) = $1 AND avg(k) = $2 AND min(v) = $3":
            [t.FLOAT8, t.NUMERIC, t.TEXT],
    }
    for sql, want in cases.items():
        assert params.infer(sql, [], lookup, "a")[0] == want, sql


def test_many_parameters_are_typed_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """`k IN ($1, …, $n)` typed each `$n` by looking at every other item
    (n²: 1,000 parameters 1.8 s of a Parse, 4,000 28 s, holding a statement
    thread); `VALUES ($1, …, $n)` found each one's place by a scan, and each
    column of `k = $1 OR k = $2 OR …` walked up the whole chain. Counted
    here in look-ups, not timed."""
    tables = {("a", "s"): {"k": "BIGINT", "v": "TEXT"},
              ("a", "w"): {f"c{i}": "BIGINT" for i in range(400)}}
    lookup = lambda ns, name: tables.get((ns or "a", name))  # noqa: E731
    looks: list[int] = []
    real = param_guess._mentions
    monkeypatch.setattr(param_guess, "_mentions", lambda node, mark: (looks.append(1),
                                                                 real(node, mark))[1])
    n = 400
    in_list = "SELECT k FROM a.s WHERE k IN (" + ", ".join(f"${i}" for i in range(1, n + 1)) + ")"
    assert params.infer(in_list, [], lookup, "a")[0] == [t.INT8] * n
    assert len(looks) <= n + 2, len(looks)  # each item looked at once: was n * n
    values = "INSERT INTO a.w VALUES (" + ", ".join(f"${i}" for i in range(1, n + 1)) + ")"
    oids, targets = params.infer(values, [], lookup, "a")
    assert oids == [t.INT8] * n and targets[-1] == (f"c{n - 1}", "BIGINT")
    ors = "SELECT k FROM a.s WHERE " + " OR ".join(f"v = ${i}" for i in range(1, n + 1))
    assert params.infer(ors, [], lookup, "a")[0] == [t.TEXT] * n


def test_the_enclosing_memo_answers_as_the_walk() -> None:
    tree = sqlglot.parse_one("SELECT k FROM a.s WHERE " + " OR ".join(
        f"k = (SELECT max(k) FROM a.s s{i} WHERE s{i}.v = v)" for i in range(30)), read="duckdb")
    memo: dict[int, list[exp.Expression]] = {}
    for col in tree.find_all(exp.Column):
        assert scopes.enclosing(col, memo) == scopes.enclosing(col)
    assert memo
