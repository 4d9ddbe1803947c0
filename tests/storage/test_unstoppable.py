"""The guards of storage/unstoppable.py count what blows up: a vector's total.
Rows up to the free bound pass uncounted; the longer ones of one vector pass
together up to the vector's bound, and a vector past it is refused, whatever
the other vectors hold."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from storage import unstoppable
from storage.unstoppable import LIST_MAX, LIST_VECTOR_MAX, SPLIT_MAX, SPLIT_VECTOR_MAX, VECTOR


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    # one thread: a table's rows reach the function in their order, VECTOR at a time
    con = duckdb.connect(config={"threads": 1})
    unstoppable.define(con)
    yield con
    con.close()


def texts(con: duckdb.DuckDBPyConnection, sizes: dict[int, int], rows: int) -> None:
    """Table t of `rows` texts: row i of sizes.get(i, 1) bytes, no ',' in any."""
    cases = " ".join(f"WHEN {i} THEN {n}" for i, n in sizes.items())
    con.execute(f"CREATE OR REPLACE TABLE t AS SELECT i, repeat('a', CASE i {cases} ELSE 1 END) "
                f"AS a FROM range({rows}) r(i) ORDER BY i")


def split(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT sum(len(string_split(a, ','))) FROM t").fetchone()[0])


def test_long_texts_are_counted_by_the_vector(con: duckdb.DuckDBPyConnection) -> None:
    # a whole vector at the free bound: uncounted, as before
    texts(con, dict.fromkeys(range(VECTOR), SPLIT_MAX), VECTOR)
    assert split(con) == VECTOR
    # long texts of one vector, together exactly at its bound: split
    half = SPLIT_VECTOR_MAX // 2
    texts(con, {0: half, 7: half}, VECTOR)
    assert split(con) == VECTOR
    # one byte past it: refused, naming the function and both bounds
    texts(con, {0: half, 7: half + 1}, VECTOR)
    with pytest.raises(duckdb.InvalidInputException) as refused:
        split(con)
    assert "string_split()" in str(refused.value)
    assert f"{SPLIT_MAX:,} bytes a row" in str(refused.value)
    assert f"{SPLIT_VECTOR_MAX:,} bytes together" in str(refused.value)
    # the same two texts in two vectors: each its own bound
    texts(con, {0: half, VECTOR: half + 1}, 2 * VECTOR)
    assert split(con) == 2 * VECTOR
    # one text alone past the vector's bound: refused
    texts(con, {3: SPLIT_VECTOR_MAX + 1}, 4)
    with pytest.raises(duckdb.InvalidInputException, match="string_split"):
        split(con)


def test_long_lists_are_counted_by_the_vector(con: duckdb.DuckDBPyConnection) -> None:
    def lists(sizes: dict[int, int], rows: int) -> int:
        cases = " ".join(f"WHEN {i} THEN {n}" for i, n in sizes.items())
        con.execute(f"CREATE OR REPLACE TABLE l AS SELECT i, (SELECT list(x) FROM range(CASE i "
                    f"{cases} ELSE 1 END) s(x)) AS l FROM range({rows}) r(i) ORDER BY i")
        return int(con.execute("SELECT sum(len(list_distinct(l))) FROM l").fetchone()[0])

    assert lists(dict.fromkeys(range(VECTOR), LIST_MAX), VECTOR) == VECTOR * LIST_MAX
    half = LIST_VECTOR_MAX // 2
    assert lists({0: half, 9: half}, VECTOR) == 2 * half + VECTOR - 2
    assert lists({0: half, VECTOR: half + 1}, 2 * VECTOR) == 2 * half + 1 + 2 * VECTOR - 2
    with pytest.raises(duckdb.InvalidInputException) as refused:
        lists({0: half, 9: half + 1}, VECTOR)
    assert "list_distinct()" in str(refused.value)
    assert f"{LIST_MAX:,} elements a row" in str(refused.value)
    assert f"{LIST_VECTOR_MAX:,} elements together" in str(refused.value)
    # a constant list past the bound: refused as it runs, not folded while planned
    with pytest.raises(duckdb.InvalidInputException, match="list_distinct"):
        con.execute(f"SELECT len(list_distinct(range({LIST_VECTOR_MAX + 1})))").fetchall()
