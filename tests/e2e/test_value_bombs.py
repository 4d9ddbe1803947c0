"""Short SELECTs whose values, or the work of building them, grow faster
than what the query writes: refused before DuckDB runs anything (none of
this memory is DuckDB's to limit). Each statement here is small enough to
run harmlessly where the check is missing; the attacker's versions killed
the server (storage/value_bounds.py)."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from server.app import create_app
from server.config import Config
from tests.helpers import err, ok, rows

LONG = "'" + "x" * 300 + "'"  # a literal copied once per element


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config) -> Any:
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a,b'), (2, 'c')")
    return client


REFUSED = [
    # An (n+2)^2 matrix: two strings of 12,000 characters took 1.1 GB.
    ("SELECT damerau_levenshtein('ab', 'ba')", "damerau_levenshtein()"),
    ("SELECT 'ab'.damerau_levenshtein('ba')", "damerau_levenshtein()"),
    # A call on literals inside a lambda runs once per element: its bound is
    # shared among them (range(1048576) a thousand times killed the server).
    ("SELECT len(list_transform(range(20), x -> range(4000)))", "range()"),
    ("SELECT list_transform(range(20), lambda x: generate_series(1, 4000))", "generate_series()"),
    ("SELECT list_transform(range(200), x -> repeat('y', 400))", "repeat()"),
    ("SELECT list_transform(range(200), x -> lpad('a', 400, 'b'))", "lpad()"),
    ("SELECT list_transform(range(200), x -> list_resize([1], 400))", "list_resize()"),
    ("SELECT list_transform(range(20), x -> printf('%4000d', x))", "printf()"),
    ("SELECT [range(7000) for x in range(10)]", "range()"),
    ("SELECT [x for x in range(10) if len(range(7000)) > 0]", "range()"),
    ("SELECT list_filter(range(100), x -> len(range(1000)) > x)", "range()"),
    ("SELECT list_reduce(range(100), (a, b) -> a + len(range(1000)))", "range()"),
    # Nested lambdas multiply: 100 x 100 runs of lpad(.., 10).
    ("SELECT list_transform(range(100), x -> list_transform(range(100), y -> lpad('a', 10, 'b')))",
     "lpad()"),
    # Over a list the query does not write out, the runs cannot be counted.
    ("SELECT list_transform(string_split(v, ','), x -> lpad(x, 3, '0')) FROM app.t", "lpad()"),
    (f"SELECT list_transform(string_split(v, ','), x -> {LONG}) FROM app.t", "string literal"),
    (f"SELECT list_transform(range(300), x -> {LONG})", "string literal"),
    # A list's elements weigh their bytes; list_resize's fill is copied n times.
    (f"SELECT repeat([{LONG}], 4000)", "repeat()"),
    (f"SELECT list_resize([''], 4000, {LONG})", "list_resize()"),
    ("SELECT list_resize([''], 10, v) FROM app.t", "list_resize()"),
    # Each call within its bound, too many of them in one statement.
    ("SELECT " + ", ".join(["lpad('a', 1048576, 'b')"] * 5), "lpad"),
    # A map holds ~900 bytes an entry (range(1048576) of them: 975 MB).
    ("SELECT cardinality(map(range(140000), range(140000)))", "map"),
    # RE2 expands counted repetitions before its own size limit applies:
    # 50 x a{1,1000} took 17 s, 72 KB of them 1.1 GB; a pattern from a
    # column, any size.
    ("SELECT regexp_matches('a', '" + "a{1,1000}" * 11 + "')", "regexp_matches()"),
    ("SELECT regexp_replace(v, '" + "\\pL" * 340 + "', '') FROM app.t", "regexp_replace()"),
    ("SELECT regexp_matches('a', v) FROM app.t", "regexp_matches()"),
    ("SELECT 'a' SIMILAR TO v FROM app.t", "SIMILAR TO"),
    ("SELECT 'a' SIMILAR TO '" + "a{1,1000}" * 11 + "'", "SIMILAR TO"),
    # A guarded call's value is computed twice, measured and run: measured as
    # [], a list of 2,000,000 was hashed one try in four.
    ("SELECT len(list_distinct(CASE WHEN random() < 0.5 THEN l ELSE [] END)) FROM "
     "(SELECT list(x) AS l FROM range(3000) t(x))", "_distinct() of a value computed from rand()"),
    ("SELECT (CASE WHEN random() < 0.5 THEN v ELSE '' END).split(',') FROM app.t",
     "split() of a value computed from rand()"),
    ("SELECT jaro_similarity(v, gen_random_uuid()::VARCHAR) FROM app.t", "computed from uuid()"),
    # A structure nested 1,500 deep: DuckDB built its type for 53 s of CPU past
    # the query timeout (3,000 deep: minutes, and SIGTERM waited for it).
    ("SELECT from_json('1', '" + "[" * 65 + '"INTEGER"' + "]" * 65 + "')", "from_json()"),
    ("SELECT json_transform('1', '" + '{"a":' * 70 + '"INTEGER"' + "}" * 70 + "')",
     "json_transform()"),
    # built by an expression, or nested inside a type name: 900 deep took 9 s
    ("SELECT from_json('{}', repeat('{\"a\":', 70) || '\"INTEGER\"' || repeat('}', 70))",
     "from_json()"),
    ("SELECT from_json('{}', '{\"a\":\"" + "STRUCT(a " * 70 + "INT" + ")" * 70 + "\"}')",
     "from_json()"),
    # closers in a key first hid the nesting after them (a running sum)
    ("SELECT from_json('{}', '{\"" + ")" * 80 + "\": \"INTEGER\", \"a\": \""
     + "STRUCT(a " * 70 + "INT" + ")" * 70 + "\"}')", "from_json()"),
]


@pytest.mark.parametrize(("text", "name"), REFUSED)
async def test_a_value_that_outgrows_the_query_is_refused(client: Any, text: str,
                                                          name: str) -> None:
    message = await err(client, text, "INVALID_ARGUMENT")
    assert name in message, message


async def test_lambdas_within_the_bounds_run(client: Any) -> None:
    one = await rows(client, "SELECT list_transform(range(3), x -> lpad(x::VARCHAR, 3, '0')) AS p, "
                             "[repeat('ab', 2) for x in range(2)] AS r, "
                             "len(list_transform(range(20), x -> range(3000))) AS n, "
                             "list_transform(range(2), x -> list_transform(range(2), "
                             "y -> lpad('a', 2, 'b'))) AS nested, "
                             "levenshtein('kitten', 'sitting') AS d, "
                             "regexp_matches('abc', '^[a-c]{1,1000}$') AS m, "
                             "'abc' SIMILAR TO 'a.c' AS s")
    nested = await rows(client, "SELECT from_json('[[1]]', '[[\"INTEGER\"]]') AS j, "
                                "from_json('{\"a\":1}', $${\"a\":\"INTEGER\"}$$) AS d, "
                                "from_json('{\"a\":1}', E'{\"a\":\"INTEGER\"}') AS e")
    assert nested == [{"j": [[1]], "d": {"a": 1}, "e": {"a": 1}}]
    assert one == [{"p": ["000", "001", "002"], "r": ["abab", "abab"], "n": 20,
                    "nested": [["ba", "ba"], ["ba", "ba"]], "d": 3, "m": True, "s": True}]
    # A lambda over a column's list without a bounded call in it is as before.
    got = await rows(client, "SELECT list_transform(string_split(v, ','), x -> x || '!') AS l "
                             "FROM app.t ORDER BY id")
    assert got == [{"l": ["a!", "b!"]}, {"l": ["c!"]}]


async def test_a_jaro_similarity_past_what_duckdb_can_stop_is_refused(client: Any) -> None:
    """DuckDB hears a timeout between vectors only, and jaro_similarity's time
    is the lengths multiplied: a vector of 1,024 pairs of 64 KB ran 38 s past
    a 10 s timeout (1 MB pairs: hours). Past 4,096 x 4,096 characters it is
    refused when reached (storage/unstoppable.py); shorter ones run as before,
    their columns named as before."""
    for text, name in (
            ("SELECT max(jaro_similarity(repeat('ab', 2048) || x::VARCHAR, repeat('b', 4100))) "
             "FROM range(2) t(x)", "jaro_similarity()"),
            ("SELECT jaro_winkler_similarity(v || repeat('x', 5000), repeat('y', 5000), 0.5) "
             "FROM app.t", "jaro_winkler_similarity()"),
            ("SELECT jaro_similarity(repeat('a', 1000000), repeat('b', 1000000))",
             "jaro_similarity()"),
            ("SELECT system.main.jaro_similarity('a', 'b')", "by its name alone")):
        message = await err(client, text, "INVALID_ARGUMENT")
        assert name in message, (text, message)
    got = await rows(client, "SELECT jaro_similarity('martha', 'marhta'), "
                             "round(jaro_winkler_similarity(v, 'a,c'), 3) AS w FROM app.t "
                             "WHERE id = 1")
    assert got == [{"jaro_similarity('martha', 'marhta')": 0.9444444444444445, "w": 0.822}]


def duckdb_answer(text: str) -> list[tuple[Any, ...]]:
    """What DuckDB itself answers `text`, with no guard."""
    con = duckdb.connect()
    try:
        return con.execute(text).fetchall()
    finally:
        con.close()


async def test_a_text_split_into_a_list_past_what_duckdb_can_bound_is_refused(client: Any) -> None:
    """string_split and the regular expression splits build ~33 bytes a piece,
    a vector of 2,048 rows at once, outside DuckDB's memory limit and its
    interrupt: 20 rows of 10 MB texts took the server to 4.9 GB under a 1 GB
    limit, 14.4 s against a 3 s timeout. What blows up is the vector's total
    (bench/bench_unstoppable.py): texts past 8,192 bytes pass up to 8 MiB
    together in one vector, and past that they are refused when reached
    (storage/unstoppable.py), under each of their names, called as a method
    or through regexp_split_to_table; one long text splits as DuckDB splits
    it, named as before."""
    long = "repeat('a,', 300000)"  # 600,000 bytes: 20 rows of it, 12 MB in one vector
    many = "FROM range(20) t(x)"
    for text, name in (
            (f"SELECT sum(len(string_split({long} || x::VARCHAR, ','))) {many}", "str_split()"),
            (f"SELECT sum(len(string_to_array({long} || x::VARCHAR, ','))) {many}",
             "str_split()"),
            (f"SELECT sum(len(({long} || x::VARCHAR).string_split(','))) {many}",
             "string_split()"),
            (f"SELECT sum(len(regexp_extract_all({long} || v, '.', 0))) FROM app.t, range(10)",
             "regexp_extract_all()"),
            (f"SELECT sum(len(regexp_split_to_array({long} || x::VARCHAR, ','))) {many}",
             "regexp_split_to_array()"),
            (f"SELECT sum(len(string_split_regex(v || {long}, ',', 'i'))) FROM app.t, range(10)",
             "str_split_regex()"),
            (f"SELECT count(*) FROM (SELECT regexp_split_to_table({long} || x::VARCHAR, ',') "
             f"{many})", "string_split_regex()"),
            # 2,048 rows of 8,194 bytes: 16 MiB past the free 8,192 a row
            ("SELECT sum(len(string_split(repeat('a,', 4097) || x::VARCHAR, ','))) "
             "FROM range(2048) t(x)", "str_split()"),
            ("SELECT system.main.string_split('a', ',')", "by its name alone")):
        message = await err(client, text, "INVALID_ARGUMENT")
        assert name in message, (text, message)
        assert "8,192 bytes a row" in message and "8,388,608 bytes together" in message \
            or "alone" in message, (text, message)
    got = await rows(client, "SELECT string_split(v, ',') AS s, regexp_extract_all(v, '[a-c]') "
                             "AS r, len(string_split(repeat('a,', 4095), ',')) AS n FROM app.t "
                             "ORDER BY id")
    assert got == [{"s": ["a", "b"], "r": ["a", "b"], "n": 4096},
                   {"s": ["c"], "r": ["c"], "n": 4096}]
    # A method call on a value is the guard's call, not a qualified one: it runs.
    assert await rows(client, "SELECT VARCHAR 'a,b'.split(',')[2] AS x, "
                              "(v || ',z').split(',') AS y FROM app.t ORDER BY id") == [
        {"x": "b", "y": ["a", "b", "z"]}, {"x": "b", "y": ["c", "z"]}]


async def test_one_long_text_a_row_is_split_as_duckdb_splits_it(client: Any) -> None:
    """A text past 8,192 bytes in one row (or in a few) is no attack: split as
    DuckDB's own string_split splits it (it was refused, 9 KB as 1 MB)."""
    for text in (
            "SELECT string_split(repeat('ab,', 3000) || 'z', ',') AS s",  # 9 KB
            "SELECT regexp_split_to_array(repeat('ab,', 3000), ',') AS s",
            "SELECT len(string_split(repeat('a,', 500000), ',')) AS s",  # 1 MB
            "SELECT len(regexp_extract_all(repeat('a,', 500000), '.')) AS s",
            "SELECT sum(len(string_split(repeat('a,', 4097) || x::VARCHAR, ','))) AS s "
            "FROM range(300) t(x)"):
        assert await rows(client, text) == [{"s": duckdb_answer(text)[0][0]}], text


async def test_a_list_hashed_past_what_duckdb_can_bound_is_refused(client: Any) -> None:
    """list_distinct, list_mode & co. hash every element (~60 bytes outside
    DuckDB's memory limit, and more time an element the longer the list) of
    a vector's lists at once, deaf to the timeout: list_distinct of one list
    of 16.7M built by list() ran 58.6 s against a 20 s timeout, 1.4 GB; one
    of 4.2M 12.5 s. Lists past 2,048 elements pass up to 262,144 elements
    together in one vector; past that they are refused when reached
    (storage/unstoppable.py); list_aggregate only for the aggregates that
    hash; one long list a row answered as DuckDB answers it."""
    # 100 lists of 3,000 in one vector (ORDER BY: a GROUP BY's own rows come
    # in small vectors, each its own bound)
    big = "(SELECT x, list(y) AS l FROM range(100) t(x), range(3000) u(y) GROUP BY x ORDER BY x)"
    for text, name in (
            (f"SELECT sum(len(list_distinct(l))) FROM {big}", "list_distinct()"),
            (f"SELECT count(list_unique(l)) FROM {big}", "list_unique()"),
            (f"SELECT count(list_mode(l)) FROM {big}", "list_mode()"),
            (f"SELECT sum(cardinality(list_histogram(l))) FROM {big}", "list_histogram()"),
            (f"SELECT sum(len(list_intersect(l, [1]))) FROM {big}", "list_intersect()"),
            (f"SELECT count(list_aggregate(l, 'MODE')) FROM {big}", "list_aggregate()"),
            (f"SELECT count(l.list_entropy()) FROM {big}", "list_entropy()"),
            # list_has_all(l, l) of one 16.7M-element list: 104 s against 20 s
            (f"SELECT count(*) FILTER (l && [1]) FROM {big}", "the && operator"),
            (f"SELECT count(*) FILTER ([1] <@ l) FROM {big}", "the <@ operator"),
            (f"SELECT count(*) FILTER (array_has_all(l, [1])) FROM {big}", "the @> operator"),
            ("SELECT len(list_distinct(range(300000)))", "list_distinct()"),
            ("SELECT system.main.list_distinct([1])", "by its name alone")):
        message = await err(client, text, "INVALID_ARGUMENT")
        assert name in message, (text, message)
        assert "2,048 elements" in message and "262,144 elements together" in message \
            or "alone" in message, (text, message)
    one = "(SELECT list(x) AS l FROM range(3000) t(x))"
    got = await rows(client, f"SELECT list_aggregate(l, 'sum') AS s, list_sum(l) AS t, "
                             "list_distinct([2, 2]) AS d, list_mode([1, 2, 2]) AS m, "
                             f"len(list_distinct(l[:2048])) AS n FROM {one}")
    assert got == [{"s": 4498500, "t": 4498500, "d": [2], "m": 2, "n": 2048}]
    # && is GEOMETRY's too; a list literal written as text casts as before
    got = await rows(client, "SELECT 'POINT(0 0)'::GEOMETRY && 'POINT(0 0)' AS g, "
                             "'[1,2]' && [1] AS t, [1, 2] @> [2] AS a, [3] <@ [1, 2] AS b")
    assert got == [{"g": True, "t": True, "a": True, "b": False}]


async def test_one_long_list_a_row_is_hashed_as_duckdb_hashes_it(client: Any) -> None:
    """A list past 2,048 elements in one row (or in a few) is no attack:
    answered as DuckDB's own functions answer it (3,000 elements were refused)."""
    one = "(SELECT list(x) AS l FROM range(3000) t(x))"
    for text in (
            f"SELECT list_sort(list_distinct(l || l)) AS s FROM {one}",
            f"SELECT list_mode(l || [7]) AS s FROM {one}",
            f"SELECT round(list_entropy(l), 6) AS s FROM {one}",
            f"SELECT l && [2999] AS s FROM {one}",
            f"SELECT l @> range(100, 2900) AS s FROM {one}",
            f"SELECT len(list_intersect(l, range(1000, 5000))) AS s FROM {one}",
            f"SELECT list_aggregate(l || [5], 'mode') AS s FROM {one}",
            "SELECT len(list_distinct(range(200000))) AS s",
            "SELECT sum(len(list_distinct(l))) AS s FROM (SELECT x, list(y % 2500) AS l "
            "FROM range(50) t(x), range(3000) u(y) GROUP BY x)"):
        assert await rows(client, text) == [{"s": duckdb_answer(text)[0][0]}], text


async def test_a_hashing_window_function_over_a_moving_frame_is_refused(client: Any) -> None:
    """mode, histogram and entropy over a frame that moves merge a hash table
    of the frame for every row, deaf to the timeout and outside the memory
    limit: histogram() over 100,000-row frames of 300,000 rows took the
    server to 16.4 GB under a 1 GB limit, 114 s against a 20 s timeout.
    Refused before DuckDB runs (storage/unstoppable.py) unless the window is
    a whole partition or a ROWS frame of at most 1,024 rows."""
    for text in (
            "SELECT mode(x) OVER (ORDER BY x) FROM range(3) t(x)",
            "SELECT histogram(x) OVER (ORDER BY x ROWS BETWEEN 1025 PRECEDING AND CURRENT ROW) "
            "FROM range(3) t(x)",
            "SELECT entropy(x) FILTER (WHERE x > 0) OVER (ORDER BY x RANGE BETWEEN 1 PRECEDING "
            "AND CURRENT ROW) FROM range(3) t(x)",
            "SELECT mode(x) OVER w FROM range(3) t(x) WINDOW w AS (ORDER BY x)",
            "SELECT mode(x) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
            "FROM range(3) t(x)",
            # mad's work a row grows with the frame: 6M rows 140 s against 20 s
            "SELECT mad(x) OVER (ORDER BY x) FROM range(3) t(x)"):
        message = await err(client, text, "INVALID_ARGUMENT")
        assert "as a window function" in message and "1,024 rows" in message, (text, message)
    # approx_top_k(x, 3000) OVER (ORDER BY x) over 2,000 rows: 3.7 GB
    message = await err(client, "SELECT approx_top_k(x, 3) OVER (PARTITION BY x) "
                                "FROM range(3) t(x)", "INVALID_ARGUMENT")
    assert "approx_top_k() is not a window function" in message, message
    got = await rows(client, "SELECT approx_top_k(x % 2, 1) AS k FROM range(3) t(x)")
    assert got == [{"k": [0]}]
    got = await rows(client, "SELECT x, mode(x % 2) OVER (PARTITION BY x < 2) AS p, "
                             "entropy(x) OVER (ORDER BY x ROWS BETWEEN 1 PRECEDING AND "
                             "1 FOLLOWING) > 0 AS e, cardinality(histogram(x) OVER (ORDER BY x "
                             "ROWS 1024 PRECEDING)) AS h, sum(x) OVER (ORDER BY x) AS s, "
                             "mad(x) OVER () AS m FROM range(3) t(x) ORDER BY x")
    assert got == [{"x": 0, "p": 0, "e": True, "h": 1, "s": 0, "m": 1.0},
                   {"x": 1, "p": 0, "e": True, "h": 2, "s": 1, "m": 1.0},
                   {"x": 2, "p": 0, "e": True, "h": 3, "s": 3, "m": 1.0}]
