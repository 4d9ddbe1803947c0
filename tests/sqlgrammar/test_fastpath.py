"""The SQL fast path (sqlgrammar/fastpath.py) gives exactly what the normal
path gives, or nothing: seeded generated statements of its two shapes, valid
and near-valid, compared node for node (bench/bench_fastpath.py runs a large
count)."""

from __future__ import annotations

import random
import re

import pytest

from bench.fastpath_cases import check_parse, statement
from sqlgrammar import fastpath, parser


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_statements_parse_exactly_as_sqlglot(seed: int) -> None:
    rng = random.Random(seed)
    count = 1500
    taken = sum(check_parse(statement(rng)) for _ in range(count))
    # The generator is built to hit the fast path often; if it stopped doing
    # so this test would prove nothing.
    assert taken > count // 4


@pytest.mark.parametrize("sql", [
    "INSERT INTO load.t VALUES (1000000001, 3, 'ab12')",
    "insert into App.Notes (ID, body) values (-5, 'it''s', NULL, true, 1.25)",
    "SELECT id, client, v FROM load.t WHERE id = 1000000001",
    "  \n select A from app.t where name = 'x' ;  \n",
    "SELECT v FROM t WHERE id = -3",
    "INSERT INTO app.t VALUES (1), (2)",
    "insert into app.t (id, s) values (1, 'a'), (-2, NULL),\n (3.5, 'it''s') ;",
])
def test_hot_shapes_take_the_fast_path(sql: str) -> None:
    assert check_parse(sql)


@pytest.mark.parametrize("sql", [
    "INSERT INTO app.t VALUES (1) -- note",
    "INSERT INTO app.t VALUES (1) /* note */",
    'INSERT INTO "app".t VALUES (1)',
    "INSERT INTO app.t VALUES (E'x')",
    "INSERT INTO app.t VALUES ('a\\b')",
    "INSERT INTO app.t VALUES (1 + 2)",
    "INSERT INTO app.t VALUES (now())",
    "INSERT INTO app.t VALUES (1e5)",
    "INSERT INTO app.t VALUES (0x10)",
    "INSERT INTO app.t VALUES (1_000)",
    "INSERT INTO app.t VALUES (-'5')",
    "INSERT INTO app.t VALUES (1);",
    "INSERT INTO app.t VALUES (1);;",
    "INSERT INTO app.t VALUES (1); SELECT 1",
    "INSERT INTO app.t SELECT 1",
    "SELECT current_date FROM app.t WHERE id = 1",
    "SELECT id FROM app.values WHERE id = 1",
    "SELECT id FROM app.t WHERE id = 1 LIMIT 1",
    "SELECT id FROM app.t WHERE id = 1 AND n = 2",
    "SELECT * FROM app.t WHERE id = 1",
    "SELECT id FROM app.t WHERE 1 = id",
    "SELECT id FROM app.t AS x WHERE id = 1",
    "SELECT t.id FROM app.t WHERE id = 1",
    "SELECT id FROM app.t\u00a0WHERE id = 1",
    "SELECT id FROM app.tée WHERE id = 1",
    "\ufeffSELECT id FROM app.t WHERE id = 1",
    "SELECT id FROM app.t WHERE id = NULL",
])
def test_anything_else_goes_the_normal_way(sql: str) -> None:
    found = parser._fast(sql)
    if sql.endswith("VALUES (1);"):
        assert found is not None  # a trailing `;` is part of the shape
        return
    assert found is None


def test_a_keyword_used_as_a_name_is_decided_by_sqlglot() -> None:
    """`load` is one of sqlglot's keywords and still a name to it;
    `current_date` in a SELECT list is a function: the first is taken, the
    second not."""
    assert parser._fast("SELECT id FROM load.t WHERE id = 1") is not None
    assert parser._fast("SELECT current_date FROM app.t WHERE id = 1") is None


def test_a_full_skeleton_map_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound the map is emptied, not closed: shapes met after the
    first 4,096 (a long-lived server's, or a client's who sent that many) still
    take the fast path."""
    monkeypatch.setattr(fastpath, "_CHECKED", {})
    monkeypatch.setattr(fastpath, "MAX_SKELETONS", 2)
    assert parser._fast("SELECT a FROM app.t WHERE a = 1") is not None
    assert parser._fast("SELECT a FROM app.t WHERE a = 2") is not None  # same skeleton
    assert parser._fast("SELECT b FROM app.t WHERE b = 1") is not None
    assert len(fastpath._CHECKED) == 2
    assert parser._fast("SELECT c FROM app.t WHERE c = 1") is not None
    assert list(fastpath._CHECKED.values()) == [0]  # emptied, then this one
    assert parser._fast("SELECT current_date FROM app.t WHERE id = 1") is None


# The string token as first written: one step per character, backtracking.
_PLAIN_STRING = re.compile(r"'(?:[^'\\]|'')*'(?!')")


def test_the_string_token_matches_what_a_plain_pattern_matches() -> None:
    """The tokenizer matches a string's runs possessively (a long literal in one
    step per run, not per character, on the event loop); it must take exactly
    the text the plain, backtracking pattern takes, from every start."""
    rng = random.Random(15)
    token = fastpath._TOKEN
    for _ in range(20_000):
        text = "'" + "".join(rng.choice("ab' \\;") for _ in range(rng.randint(0, 12)))
        plain = _PLAIN_STRING.match(text)
        match = token.match(text)
        got = match.group("str") if match is not None else None
        assert got == (plain.group() if plain is not None else None), text


def test_a_long_string_literal_is_one_token() -> None:
    text = "x" * 300_000 + "''" + "y" * 10
    parsed = fastpath.parse_fast(f"INSERT INTO a.t (id, s) VALUES (1, '{text}')")
    assert parsed is not None
    assert text.replace("''", "'") in repr(parsed[1])
