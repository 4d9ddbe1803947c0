"""Conditions on the primary key go into every scan of the newest-version view
(storage/pushdown.py): which conditions move, and that every answer is the one
the query gives without the move, over keys with several versions, deleted
keys, keys brought back, rows in files and in the buffer, a column added
later, and a USER table."""

from __future__ import annotations

import random

import pytest
import sqlglot

from storage import pushdown
from storage.engine import Engine

from .conftest import Run, col

INT_COLS = [{"name": "id", "type": "BIGINT"}, {"name": "v", "type": "INT"}]
TEXT_COLS = [{"name": "k", "type": "TEXT"}, {"name": "v", "type": "INT"}]


def moved(sql: str, pk: list[str] | None = None, cols: list[dict] | None = None) -> str | None:
    return pushdown.key_filter(sqlglot.parse_one(sql, read="duckdb"), pk or ["id"],
                               cols or INT_COLS)


def test_which_conditions_move() -> None:
    assert moved("SELECT * FROM a.t WHERE id % 100 = 1") == "(id % 100 = 1)"
    assert moved("SELECT * FROM a.t AS x WHERE x.id BETWEEN 3 AND 9 AND v > 2") == (
        "(id BETWEEN 3 AND 9)")
    assert moved("SELECT * FROM a.t WHERE (id IN (1, 2) OR id IS NULL) AND NOT id = -4") == (
        "((id IN (1, 2) OR id IS NULL)) AND (NOT id = -4)")
    assert moved("SELECT k FROM a.t WHERE k >= 'b' AND k < 'd'", ["k"], TEXT_COLS) == (
        "(k < 'd') AND (k >= 'b')")
    for sql in (
        "SELECT * FROM a.t WHERE v = 1",  # not the key
        "SELECT * FROM a.t WHERE id = 1 OR v = 2",  # reads another column
        "SELECT * FROM a.t WHERE id % 0 = 0",  # could fail
        "SELECT * FROM a.t WHERE id * 1000000000000 > 5",  # could overflow
        "SELECT * FROM a.t WHERE id = '7'",  # a string for an integer key: a cast
        "SELECT * FROM a.t WHERE id > 1.5",
        "SELECT * FROM a.t WHERE id IN (SELECT id FROM a.u)",  # two tables
        "SELECT * FROM a.t JOIN a.u USING (id) WHERE id = 1",
        "SELECT * FROM a.t WHERE abs(id) = 1",  # a function
        "SELECT * FROM a.t WHERE random() < 0.5",
        "SELECT * FROM a.t WHERE 1 = 1",
        "SELECT * FROM a.t",
        "SELECT * FROM (SELECT * FROM a.t) WHERE id = 1",  # not the table's own WHERE
        "SELECT * FROM a.t WHERE other.id = 1",
    ):
        assert moved(sql) is None, sql
    assert moved("SELECT * FROM a.t WHERE k = 1", ["k"], TEXT_COLS) is None  # int for TEXT
    assert moved("SELECT * FROM a.t WHERE k % 2 = 1", ["k"], TEXT_COLS) is None
    assert moved("SELECT * FROM a.t WHERE id = 1 AND k = 'a'", ["id", "k"],
                 [*INT_COLS, *TEXT_COLS]) is None  # keys of two families: nothing moves


def _history(run: Run, engine: Engine, rng: random.Random, table: str, user: str | None,
             n: int) -> None:
    """Several versions per key, deletions, keys brought back; some flushed
    (several files), some left in the buffer."""
    run(f"INSERT INTO app.{table} (id, v) VALUES " + ", ".join(f"({i}, {i})" for i in range(n)),
        user)
    for step in range(5):
        lo = rng.randrange(n)
        run(f"UPDATE app.{table} SET v = v + 1000 WHERE id % 3 = {step % 3} AND id >= {lo}", user)
        run(f"DELETE FROM app.{table} WHERE id % 7 = {step} AND id < {lo}", user)
        live = {r["id"] for r in run(f"SELECT id FROM app.{table} WHERE id % 11 = 0", user)}
        back = [i for i in range(0, n, 11) if i not in live]
        if back:  # deleted keys inserted again (new versions after a deletion)
            run(f"INSERT INTO app.{table} (id, v) VALUES "
                + ", ".join(f"({i}, {-i})" for i in back), user)
        if step % 2 == 1:  # the last step's versions stay in the buffer
            engine.flush_table("app", table)
        if step == 3 and not any(c["name"] == "w" for c in engine.state("app", table).columns):
            engine.add_column("app", table, col("w", "INT", default=5))


QUERIES = [
    "SELECT id, v FROM app.{t} WHERE id % 5 = 2 ORDER BY id",
    "SELECT id, v, _deleted FROM app.{t} WHERE id % 5 = 2 AND _deleted ORDER BY id",
    "SELECT count(*) AS n, sum(v) AS s FROM app.{t} WHERE id BETWEEN 10 AND 60",
    "SELECT * FROM app.{t} AS x WHERE x.id IN (0, 11, 22, 33, 999) ORDER BY id",
    "SELECT id FROM app.{t} WHERE (id < 5 OR id > 70) AND v > 0 ORDER BY id",
    "SELECT id, w FROM app.{t} WHERE NOT id % 2 = 0 AND id IS NOT NULL ORDER BY id",
    "SELECT id, v FROM app.{t} WHERE id = 44",
]


@pytest.mark.parametrize("kind", ["shared", "user"])
def test_answers_are_the_same_with_and_without(engine: Engine, run: Run,
                                               monkeypatch: pytest.MonkeyPatch,
                                               kind: str) -> None:
    engine.create_table("app", "t", kind, [col("id", "BIGINT", primary_key=True), col("v")])
    user = "alice" if kind == "user" else None
    rng = random.Random(15)
    _history(run, engine, rng, "t", user, 60)
    if kind == "user":  # another user's versions of the same keys must stay out
        _history(run, engine, random.Random(16), "t", "bob", 40)
    assert engine.state("app", "t").files and engine.state("app", "t").buffered_rows()
    calls: list[str | None] = []
    real = pushdown.key_filter

    def spy(*args: object) -> str | None:
        out = real(*args)  # type: ignore[arg-type]
        calls.append(out)
        return out

    monkeypatch.setattr(pushdown, "key_filter", spy)
    with_push = [run(q.format(t="t"), user) for q in QUERIES]
    assert sum(c is not None for c in calls) >= len(QUERIES) - 1  # it did move them
    monkeypatch.setattr(pushdown, "key_filter", lambda *a: None)
    without = [run(q.format(t="t"), user) for q in QUERIES]
    assert with_push == without
    assert any(with_push[1]) and with_push[0] and with_push[2][0]["n"]


def test_update_and_delete_find_the_same_rows(engine: Engine, run: Run,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The same history applied to two tables, one with the move and one without."""
    for table, on in (("a", True), ("b", False)):
        if not on:
            monkeypatch.setattr(pushdown, "key_filter", lambda *a: None)
        engine.create_table("app", table, "shared",
                            [col("id", "BIGINT", primary_key=True), col("v")])
        _history(run, engine, random.Random(7), table, None, 60)
    a = run("SELECT id, v, w, _deleted FROM app.a WHERE _deleted OR NOT _deleted ORDER BY id")
    b = run("SELECT id, v, w, _deleted FROM app.b WHERE _deleted OR NOT _deleted ORDER BY id")
    assert a == b and any(r["_deleted"] for r in a) and len(a) == 60
