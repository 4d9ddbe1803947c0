"""A multi-row INSERT of literals without sqlglot's parser
(sqlgrammar/fastrows.py): the same tree, text and position as sqlglot's, node
for node, and the same rows as `storage.values` reads off that tree, on
seeded generated statements (valid and near-valid, mixed literal kinds per
column, NULLs, negatives, strings with quotes); anything else goes the normal
way."""

from __future__ import annotations

import random

import pytest

from bench.fastpath_cases import BLANKS, DECIMALS, INTS, STRINGS, check_parse
from sqlgrammar import fastrows, parser


def _value(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.3:
        return ("-" + rng.choice(["", " ", "\n"]) if rng.random() < 0.3 else "") + rng.choice(INTS)
    if pick < 0.45:
        return ("-" if rng.random() < 0.3 else "") + rng.choice(DECIMALS)
    if pick < 0.8:
        return rng.choice(STRINGS)
    if pick < 0.95:
        return rng.choice(["NULL", "null", "TRUE", "false", "True"])
    return rng.choice(["now()", "1 + 2", "DEFAULT", "1e5", "x", "'a' 'b'", "CAST(1 AS INT)",
                       "-'5'", "--5", "0x10", "1.2.3", "?", "E'x'"])


def _statement(rng: random.Random) -> str:
    width = rng.randint(1, 5)
    cols = ""
    if rng.random() < 0.5:
        cols = " (" + ", ".join(rng.sample(["id", "n", "s", "d", "b", "m"], min(width, 6))) + ")"
        width = min(width, 6)
    rows = []
    for _ in range(rng.choice([2, 3, 5, 17, 60])):
        w = width + (rng.choice([-1, 1]) if rng.random() < 0.01 else 0)
        rows.append("(" + ("," + rng.choice(BLANKS)).join(_value(rng) for _ in range(w)) + ")")
    sep = "," + rng.choice(BLANKS)
    table = rng.choice(["app.t", "App.T", "t"])
    text = f"{rng.choice(['INSERT', 'insert'])} INTO {table}{cols} VALUES " + sep.join(rows)
    if rng.random() < 0.2:
        text = rng.choice(BLANKS) + text + rng.choice([";", " ;\n", "", " ) ", "; SELECT 1"])
    return text


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_multi_row_inserts_parse_exactly_as_sqlglot(seed: int) -> None:
    rng = random.Random(seed)
    count = 150
    taken = sum(check_parse(_statement(rng)) for _ in range(count))
    assert taken > count // 5  # the generator must keep hitting the fast path


def test_rows_are_read_as_the_tree_reads_them() -> None:
    sql = "INSERT INTO app.t (id, s, d) VALUES (1, 'a''b', -2.50), (-7, NULL, TRUE), (3, '', 0)"
    found = fastrows.parse_rows_lazy(sql)
    assert found is not None
    rows = found[2].rows
    assert [[type(v).__name__ for v in r] for r in rows] == [
        ["int", "str", "Decimal"], ["int", "NoneType", "bool"], ["int", "str", "int"]]
    assert rows[0][1] == "a'b" and str(rows[0][2]) == "-2.50" and rows[1][0] == -7
    assert check_parse(sql)


@pytest.mark.parametrize("sql", [
    "INSERT INTO app.t VALUES (1), (now())",
    "INSERT INTO app.t VALUES (1), (2) -- note",
    "INSERT INTO app.t VALUES (1), (2, 3)",
    "INSERT INTO app.t VALUES (1), (DEFAULT)",
    "INSERT INTO app.t VALUES (1), (1e5)",
    "INSERT INTO app.t VALUES (1), (2); SELECT 1",
    "INSERT INTO app.t VALUES (1), (2),",
    "INSERT INTO app.t VALUES (1) (2)",
    "INSERT INTO app.t VALUES (1), (" + "9" * 101 + ")",
    "INSERT INTO app.t SELECT 1",
    'INSERT INTO "app".t VALUES (1), (2)',
])
def test_anything_else_goes_the_normal_way(sql: str) -> None:
    assert fastrows.parse_rows_lazy(sql) is None


def test_many_new_row_skeletons_go_the_normal_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastrows, "_CHECKED", {})
    monkeypatch.setattr(fastrows, "MAX_NEW_SKELETONS", 2)
    assert fastrows.parse_rows_lazy("INSERT INTO a.t VALUES (1), ('x'), (NULL)") is None
    assert fastrows.parse_rows_lazy("INSERT INTO a.t VALUES (1), ('x')") is not None
    assert fastrows.parse_rows_lazy("INSERT INTO a.t VALUES (1), ('x'), (NULL)") is not None


def test_a_full_skeleton_map_starts_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastrows, "_CHECKED", {})
    monkeypatch.setattr(fastrows, "MAX_SKELETONS", 2)
    assert fastrows.parse_rows_lazy("INSERT INTO a.t VALUES (1), ('x')") is not None
    assert len(fastrows._CHECKED) == 2
    assert fastrows.parse_rows_lazy("INSERT INTO a.t VALUES (NULL), (2)") is not None
    assert len(fastrows._CHECKED) == 1  # emptied, then the new row kind (the int's is known)


def test_a_big_insert_is_one_pass() -> None:
    sql = "INSERT INTO a.t VALUES " + ", ".join(f"({i}, {i}.5, 'text ''{i}')" for i in range(5000))
    found = parser._fast(sql)
    assert found is not None and found.statement.small is False  # type: ignore[attr-defined]
    rows = found.statement.fast.rows  # type: ignore[attr-defined]
    assert len(rows) == 5000 and rows[4999][2] == "text '4999"


def test_a_row_wider_than_max_width_goes_the_normal_way() -> None:
    """Each width's row pattern is compiled once, on the event loop: a 16 KB
    INSERT of 8,000 values held every client 9 s, and again at every new
    width (found by trying). Past MAX_WIDTH values the statement is parsed
    the normal way and no pattern is made."""
    before = set(fastrows._ROW_RE)
    wide = fastrows.MAX_WIDTH + 1
    row = "(" + ", ".join("1" for _ in range(wide)) + ")"
    assert fastrows.parse_rows_lazy(f"INSERT INTO app.t VALUES {row}, {row}") is None
    assert set(fastrows._ROW_RE) == before
    row = "(" + ", ".join("1" for _ in range(fastrows.MAX_WIDTH)) + ")"
    assert fastrows.parse_rows_lazy(f"INSERT INTO app.t VALUES {row}, {row}") is not None
