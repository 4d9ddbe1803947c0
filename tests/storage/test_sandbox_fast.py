"""A fast-path point SELECT is not walked by the sandbox (`check_query(tree,
small=True)` asks `fast_path_tree` instead): that shape check must accept
every tree the fast path makes, and nothing the sandbox's walk refuses. Nor
by the planner (`query.tree_facts`), whose facts must be the walk's."""

from __future__ import annotations

import random
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from bench.fastpath_cases import statement
from catalog.errors import PermissionDenied
from sqlgrammar.fastpath import parse_fast
from storage import sandbox
from storage.query import names_deleted, tree_facts


def test_every_fast_path_select_has_the_shape() -> None:
    rng = random.Random(21)
    seen = 0
    for _ in range(3000):
        found = parse_fast(statement(rng))
        if found is None or found[0] != "select":
            continue
        tree = found[1]
        assert sandbox.fast_path_tree(tree), tree.sql()
        sandbox.check_query(tree)  # and the walk agrees: nothing to refuse
        _same_facts_as_the_walk(tree)
        seen += 1
    assert seen > 300


REFUSED = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT getenv('HOME') FROM t WHERE id = 1",
    "SELECT id FROM t WHERE id = getenv('X')",
    "SELECT id FROM 'data.parquet' WHERE id = 1",
    "SELECT id FROM t WHERE id = $1",
    "SELECT id FROM t WHERE id = ?",
    "SELECT current_setting('x') FROM t WHERE id = 1",
    "SELECT id FROM glob('*') WHERE id = 1",
    "SELECT id FROM t WHERE id = (SELECT read_text('x'))",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_nothing_the_sandbox_refuses_has_the_shape(sql: str) -> None:
    tree: Any = sqlglot.parse_one(sql, read="duckdb")
    assert not sandbox.fast_path_tree(tree)
    with pytest.raises(PermissionDenied):
        sandbox.check_query(tree, small=True)


def _fast(sql: str) -> exp.Expression:
    found = parse_fast(sql)
    assert found is not None
    return found[1]


def test_a_changed_tree_loses_the_shape() -> None:
    base = "SELECT id, v FROM load.t WHERE id = 12"
    assert sandbox.fast_path_tree(_fast(base))
    changes = []
    t = _fast(base)
    t.args["from_"].this.this.set("this", "a/b")  # a path-like table name
    changes.append(t)
    t = _fast(base)
    t.args["where"].this.set("expression", exp.Anonymous(this="read_text", expressions=[]))
    changes.append(t)
    t = _fast(base)
    t.set("limit", exp.Limit(expression=exp.Literal.number(1)))
    changes.append(t)
    t = _fast(base)
    t.args["from_"].this.set("alias", exp.TableAlias(this=exp.to_identifier("x")))
    changes.append(t)
    t = _fast(base)
    t.expressions[0].set("table", exp.to_identifier("other"))
    changes.append(t)
    t = _fast(base)
    t.args["from_"].this.set("catalog", exp.to_identifier("c"))
    changes.append(t)
    t = _fast(base)
    t.args["where"].set("this", exp.GT(this=exp.column("id"), expression=exp.Literal.number(1)))
    changes.append(t)
    for tree in changes:
        assert not sandbox.fast_path_tree(tree), tree.sql()
    # Not a SELECT at all, or no tree.
    assert not sandbox.fast_path_tree(_fast("INSERT INTO load.t VALUES (1, 2, 'x')"))
    assert not sandbox.fast_path_tree(None)


def _same_facts_as_the_walk(tree: Any) -> None:
    tables, ctes, deleted = tree_facts(tree)
    walked = list(tree.find_all(exp.Table))
    assert len(tables) == len(walked) and all(a is b for a, b in zip(tables, walked, strict=True))
    assert ctes == sandbox.cte_references(tree)
    assert deleted == names_deleted(tree)


@pytest.mark.parametrize("sql", [
    "SELECT id FROM load.t WHERE _deleted = 1",
    "SELECT _deleted FROM t WHERE id = 'x'",
    "SELECT id, v FROM app.t WHERE id = -4",
    "SELECT id FROM t WHERE _DELETED = 1",
])
def test_the_planner_reads_a_fast_path_select_where_it_stands(sql: str) -> None:
    tree = _fast(sql)
    assert sandbox.fast_path_tree(tree)
    _same_facts_as_the_walk(tree)


@pytest.mark.parametrize("sql", [
    "WITH c AS (SELECT 1 AS id) SELECT * FROM c JOIN app.t USING (id) WHERE _deleted",
    "SELECT a.id FROM app.t a, app.u b WHERE a.id = b.id AND b._deleted = false",
    "SELECT id FROM app.t WHERE id IN (SELECT id FROM app.u WHERE _deleted)",
])
def test_other_queries_are_walked(sql: str) -> None:
    tree = sqlglot.parse_one(sql, read="duckdb")
    assert not sandbox.fast_path_tree(tree)
    _same_facts_as_the_walk(tree)
