"""A guarded call (storage/unstoppable.py) inside a lambda runs on the list's
elements 2,048 at a time, each batch within the guard's bounds, while DuckDB
keeps all the results of one vector of rows outside its memory limit, deaf
to the timeout: list_transform(l, lambda x: string_split(x, '')) over one row
of 4,096 texts of 8 KiB took 1.49 GB under a 1 GB limit, 4-6 s. The list is
now counted whole, a row and a vector (storage/lambda_guard.py). Each
statement here is just past the bound (~9 MB of text: ~300 MB where the
guard is missing)."""

from __future__ import annotations

from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from tests.e2e.test_value_bombs import duckdb_answer
from tests.helpers import err, ok, rows

# one row: a list of 1,100 texts of 8,192 bytes (each within the free bound),
# ~9 MB past the 8 MiB of a vector
TEXTS = ("(SELECT list(repeat('a', 8188) || lpad(x::VARCHAR, 4, '0')) AS l "
         "FROM range(1100) t(x))")
# one row: 3,000 lists of 3 texts of 1 KiB (~9 MB), each within the free bound
NESTED = ("(SELECT list([repeat('b', 1024), repeat('c', 1024), repeat('d', 1024) || x::VARCHAR]) "
          "AS ll "
          "FROM range(3000) t(x))")
# one row: 3,000 lists of 100 elements, 300,000 past 262,144
LISTS = ("(SELECT list(l) AS ll FROM (SELECT x, list(y) AS l FROM range(3000) t(x), "
         "range(100) u(y) GROUP BY x))")
T = "(SELECT id, string_split(v, ';') AS l FROM app.t)"  # a list a row
SPLIT = ("split()", "8,192 bytes of text split a row", "8,388,608 together")


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config) -> Any:
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'x=1;y=2'), (2, 'z=3')")
    return client


REFUSED = [
    (f"SELECT len(list_transform(l, lambda x: string_split(x, ''))) FROM {TEXTS}", SPLIT),
    (f"SELECT len(list_transform(l, x -> string_split(x, ''))) FROM {TEXTS}", SPLIT),
    (f"SELECT len(array_transform(l, (x, i) -> string_split(x, ''))) FROM {TEXTS}", SPLIT),
    (f"SELECT len(list_apply(l, x -> string_split(x, ''))) FROM {TEXTS}", SPLIT),
    (f"SELECT len(array_apply(l, x -> string_split(x, ''))) FROM {TEXTS}", SPLIT),
    (f"SELECT len(list_filter(l, x -> len(string_split(x, '')) > 0)) FROM {TEXTS}", SPLIT),
    (f"SELECT len(array_filter(l, x -> len(string_split(x, '')) > 0)) FROM {TEXTS}", SPLIT),
    (f"SELECT len(filter(l, x -> len(string_split(x, '')) > 0)) FROM {TEXTS}", SPLIT),
    (f"SELECT len([string_split(x, '') for x in l]) FROM {TEXTS}", SPLIT),
    (f"SELECT len([x for x, i in l if len(string_split(x, '')) > i]) FROM {TEXTS}", SPLIT),
    (f"SELECT len(list_transform(l, x -> regexp_extract_all(x, '.'))) FROM {TEXTS}",
     ("regexp_extract_all()", "8,192 bytes")),
    # a split of a split: measured after the inner one has passed
    (f"SELECT len(list_transform(l, x -> string_split(string_split(x, ',')[1], ''))) "
     f"FROM {TEXTS}", SPLIT),
    # each inner list within the free bound, 2,048 of them a batch: the outer
    # lambda counts them all
    (f"SELECT len(list_transform(ll, y -> list_transform(y, x -> string_split(x, '')))) "
     f"FROM {NESTED}", SPLIT),
    (f"SELECT len([[string_split(x, '') for x in y] for y in ll]) FROM {NESTED}", SPLIT),
    # a method call's value is its first argument: measured without it, each
    # element counted 1 (~880 MB)
    (f"SELECT len(list_transform(l, x -> (x || '').split(''))) FROM {TEXTS}", SPLIT),
    (f"SELECT len(list_transform(l, x -> x::VARCHAR.string_split(''))) FROM {TEXTS}",
     ("8,192 bytes of text split a row",)),
    (f"SELECT len(list_transform(ll, y -> (y || []).list_distinct())) FROM {LISTS}",
     ("2,048 elements of lists hashed a row",)),
    (f"SELECT len(list_transform(l, x -> (x || '').split(',')[1].split(''))) FROM {TEXTS}",
     SPLIT),
    # a lambda in another's list: the other's measure copies the list, and
    # ran the inner lambda unguarded (860 MB, then refused by the outer one)
    (f"SELECT len(list_transform(list_transform(l, x -> split(x, '')), y -> list_distinct(y))) "
     f"FROM {TEXTS}", SPLIT),
    (f"SELECT len([list_distinct(y) for y in [split(x, '') for x in l]]) FROM {TEXTS}",
     ("split() in a list comprehension", "8,192 bytes")),
    (f"SELECT len(list_transform(ll, l -> list_distinct(l))) FROM {LISTS}",
     ("array_distinct()", "2,048 elements of lists hashed a row", "262,144 together")),
    (f"SELECT len(list_transform(ll, l -> l && [1])) FROM {LISTS}", ("array_overlaps()",)),
    # a call on an empty list is one element's work: 270,000 of them
    ("SELECT len(list_transform(ll, l -> list_distinct(l))) FROM (SELECT list([]::INT[]) AS ll "
     "FROM range(270000))", ("array_distinct()", "262,144 together")),
    (f"SELECT len(list_transform(ll, l -> list_aggregate(l, 'mode'))) FROM {LISTS}",
     ("list_aggregate()",)),
    # 3,000 pairs of 4,096 characters, each within the free bound
    ("SELECT len(list_transform(l, x -> jaro_similarity(x, s))) FROM (SELECT list(repeat('a', "
     "4095) || (x % 10)::VARCHAR) AS l, repeat('b', 4096) AS s FROM range(3000) t(x))",
     ("jaro_similarity()", "characters of strings compared")),
    # its accumulator is known only by running it
    (f"SELECT list_reduce(l, (a, x) -> a || string_split(x, '=')[1]) FROM {T}",
     ("split() is not allowed in list_reduce()'s lambda",)),
    # a write's values are a query too
    (f"UPDATE app.t SET v = (SELECT len(list_transform(l, x -> string_split(x, ''))) "
     f"FROM {TEXTS})::VARCHAR WHERE id = 1", SPLIT),
    # each call nested in another's arguments is measured first: 4 levels at most
    ("SELECT list_transform(['a'], x -> " + "string_split(" * 5 + "x" + ", ',')[1]" * 5 + ")",
     ("at most 4 of string_split & co. nested",)),
    # each list is copied into its measures: 40 of 30 KB
    ("SELECT " + ", ".join([f"list_transform(['{'a,' * 15000}'], x -> string_split(x, ','))"]
                           * 40), ("more than 1,048,576 characters of SQL",)),
    # each adds its measures and its refusal's text to what DuckDB binds, deaf
    # to the timeout: 2,900 such lambdas took 7 s to plan and run, +500 MB
    ("SELECT len([" + ", ".join(["list_transform(['a'], x -> split(x, ','))"] * 257) + "])",
     ("at most 256 lambdas that call string_split & co. in one statement",)),
    (f"SELECT l.list_transform(x -> string_split(x, '=')) FROM {T}",
     ("split() is not allowed",)),
    # the list is computed twice, measured and run: measured as [''], it ran
    # over l one try in four (~850 MB)
    (f"SELECT len(list_transform(CASE WHEN random() < 0.5 THEN l ELSE [''] END, "
     f"x -> string_split(x, ''))) FROM {TEXTS}", ("over a list computed from rand()",)),
    ("SELECT list_transform((SELECT list(v) FROM app.t USING SAMPLE 1), "
     "x -> string_split(x, ';'))", ("computed from a sample",)),
    ("SELECT [string_split(x, '-') for x in [gen_random_uuid()::VARCHAR]]",
     ("computed from uuid()",)),
]


@pytest.mark.parametrize(("text", "parts"), REFUSED)
async def test_a_guarded_call_in_a_lambda_is_bounded_over_the_whole_list(
        client: Any, text: str, parts: tuple[str, ...]) -> None:
    message = await err(client, text, "INVALID_ARGUMENT")
    assert all(part in message for part in parts), (text, message)


async def test_ordinary_lambdas_answer_as_duckdb_answers(client: Any) -> None:
    """(DuckDB itself takes the `lambda x:` form only: the server both.)"""
    for text in (
            "SELECT list_transform(['a=1','b=2'], lambda x: string_split(x, '=')) AS s",
            "SELECT [string_split(x, '=') for x, i in ['a=1', 'b=2'] if i > 1] AS s",
            "SELECT list_filter(['a=1', 'b', 'c=2'], lambda x: len(str_split(x, '=')) > 1) AS s",
            "SELECT list_transform([[1, 1, 2], [3]], lambda l: list_sort(list_distinct(l))) AS s",
            "SELECT list_transform([['a,b', 'c']], lambda y: list_transform(y, lambda x: "
            "string_split(x, ','))) AS s",
            "SELECT list_transform(['martha'], lambda x: jaro_similarity(x, 'marhta')) AS s",
            # one long text a row, as string_split alone passes it: 1,000 rows
            # of a text of 8 KiB
            "SELECT sum(len(list_transform([repeat('a,', 4100) || x::VARCHAR], "
            "lambda x: string_split(x, ',')))) AS s FROM range(1000) t(x)",
            "SELECT sum(len(list_transform(l, lambda x: string_split(x, ',')))) AS s FROM "
            "(SELECT list(repeat('a,', 100)) AS l FROM range(1000) t(x))",
            # the call on some elements only: each call's arguments are measured
            # on every element (a cast that fails on the others failed the query);
            # one with a guarded call in its arguments is measured as it is
            "SELECT list_transform(['1', 'a'], lambda x: CASE WHEN x = 'a' THEN [] "
            "ELSE string_split(x::INT::VARCHAR, ',') END) AS s",
            "SELECT list_transform(['a=1', 'b=2'], lambda x: (x || ',').split('=')) AS s",
            "SELECT list_transform([[1, 1], [2]], lambda y: (y || [3]).list_distinct()) AS s",
            "SELECT list_transform([['1,2']], lambda y: list_transform(y, lambda x: "
            "list_distinct(string_split(x, ',')))) AS s"):
        assert await rows(client, text) == [{"s": duckdb_answer(text)[0][0]}], text
    assert await rows(client, "SELECT list_transform(['a=1','b=2'], x -> string_split(x, '=')) "
                              "AS s") == [{"s": [["a", "1"], ["b", "2"]]}]
    # over a table's column; a guarded lambda's column is named by its text as written
    # out (DuckDB's name of it would show the guard)
    got = await rows(client, "SELECT list_transform(l, x -> string_split(x, '=')), "
                             "[list_sort(list_distinct(string_split(x, '='))) for x in l] AS c "
                             f"FROM {T} ORDER BY id")
    name = "LIST_TRANSFORM(l, LAMBDA x : STR_SPLIT(x, '='))"
    assert got == [{name: [["x", "1"], ["y", "2"]], "c": [["1", "x"], ["2", "y"]]},
                   {name: [["z", "3"]], "c": [["3", "z"]]}]
    # a list from a subquery over a table (copied into the measure: read twice)
    got = await rows(client, "SELECT list_transform((SELECT list(v ORDER BY id) FROM app.t), "
                             "x -> string_split(x, ';')) AS s")
    assert got == [{"s": [["x=1", "y=2"], ["z=3"]]}]
    # a list from random() in a subquery's column: computed once
    got = await rows(client, "SELECT list_transform(l, x -> string_split(x, ',')) AS s FROM "
                             "(SELECT CASE WHEN random() < 2 THEN ['a,b'] END AS l)")
    assert got == [{"s": [["a", "b"]]}]
