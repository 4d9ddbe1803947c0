"""Hypothesis: random INSERT / UPDATE / DELETE / FLUSH / ADD COLUMN in random order;
after every step every SELECT agrees with a plain Python model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlglot import exp

from catalog import Namespace
from catalog.errors import AlreadyExists

from .conftest import col, open_engine

KEYS = st.integers(min_value=0, max_value=20)
VALUES = st.one_of(st.none(), st.integers(min_value=-1000, max_value=1000))


class TableModel(RuleBasedStateMachine):
    KIND = "shared"
    USER: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="cairn-model-"))
        self.catalog, self.engine = open_engine(self.dir)
        self.catalog.put(Namespace("app"))
        self.engine.create_table("app", "t", self.KIND,
                                 [col("k", primary_key=True), col("v"), col("s", "TEXT")])
        if self.USER is not None:  # another user's rows, with the same keys, never seen
            other = ", ".join(f"({k}, 1, 'other')" for k in range(0, 21, 2))
            self.engine.execute(sqlglot.parse_one(f"INSERT INTO app.t VALUES {other}"),
                                "intruder", "app")
        self.live: dict[int, dict[str, Any]] = {}
        self.deleted: dict[int, dict[str, Any]] = {}
        self.extra: list[tuple[str, int]] = []  # added columns and their defaults

    def run(self, text: str) -> Any:
        tree = sqlglot.parse_one(text, read="duckdb")
        if isinstance(tree, exp.Insert | exp.Update | exp.Delete):
            return self.engine.execute(tree, self.USER, "app")
        return self.engine.query(tree, self.USER, "app").to_pylist()

    @rule(rows=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=5))
    def insert(self, rows: list[tuple[int, int | None]]) -> None:
        keys = [k for k, _ in rows]
        dup = len(set(keys)) < len(keys) or any(k in self.live for k in keys)
        values = ", ".join(f"({k}, {'NULL' if v is None else v}, 's{v}')" for k, v in rows)
        try:
            n = self.run(f"INSERT INTO app.t (k, v, s) VALUES {values}")
        except AlreadyExists:
            assert dup
            return
        assert not dup and n == len(rows)
        for k, v in rows:
            self.deleted.pop(k, None)
            self.live[k] = {"k": k, "v": v, "s": f"s{v}", **{c: d for c, d in self.extra}}

    @rule(lo=KEYS, delta=st.integers(min_value=-5, max_value=5))
    def update(self, lo: int, delta: int) -> None:
        n = self.run(f"UPDATE app.t SET v = v + {delta}, s = 'u' WHERE k >= {lo}")
        hit = [r for k, r in self.live.items() if k >= lo]
        assert n == len(hit)
        for r in hit:
            r["v"] = None if r["v"] is None else r["v"] + delta
            r["s"] = "u"

    @rule(key=KEYS)
    def delete(self, key: int) -> None:
        n = self.run(f"DELETE FROM app.t WHERE k = {key}")
        assert n == (1 if key in self.live else 0)
        if key in self.live:
            self.deleted[key] = self.live.pop(key)

    @rule()
    def flush(self) -> None:
        self.engine.flush_table("app", "t")

    @rule(key=KEYS)
    def point(self, key: int) -> None:
        """A point lookup reads only what can hold the key: same answer."""
        got = self.run(f"SELECT k, v, s FROM app.t WHERE k = {key}")
        want = [{n: self.live[key][n] for n in ("k", "v", "s")}] if key in self.live else []
        assert got == want
        gone = self.run(f"SELECT k FROM app.t WHERE _deleted AND k = {key}")
        assert gone == ([{"k": key}] if key in self.deleted else [])

    @rule()
    def restart(self) -> None:
        """Close and reopen: the buffer's key set and the files' key ranges are
        rebuilt from what is on disk."""
        self.engine.close()
        self.catalog.close()
        self.catalog, self.engine = open_engine(self.dir)

    @precondition(lambda self: len(self.extra) < 2)
    @rule(default=st.integers(min_value=0, max_value=9))
    def add_column(self, default: int) -> None:
        name = f"c{len(self.extra)}"
        self.engine.add_column("app", "t", col(name, has_default=True, default=default))
        self.extra.append((name, default))
        for r in [*self.live.values(), *self.deleted.values()]:
            r[name] = default

    @invariant()
    def selects_agree(self) -> None:
        names = ["k", "v", "s", *[c for c, _ in self.extra]]
        cols = ", ".join(names)
        got = self.run(f"SELECT {cols} FROM app.t ORDER BY k")
        assert got == [{n: self.live[k][n] for n in names} for k in sorted(self.live)]
        total = sum(r["v"] for r in self.live.values() if r["v"] is not None)
        agg = self.run("SELECT count(*) AS n, coalesce(sum(v), 0) AS s FROM app.t")
        assert agg == [{"n": len(self.live), "s": total}]
        gone = self.run("SELECT k FROM app.t WHERE _deleted ORDER BY k")
        assert [r["k"] for r in gone] == sorted(self.deleted)

    def teardown(self) -> None:
        self.engine.close()
        self.catalog.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class UserTableModel(TableModel):
    KIND = "user"
    USER = "alice"


# 60 stateful examples take about a minute on a quiet machine; more when it is busy.
pytestmark = pytest.mark.timeout(600)

SETTINGS = settings(max_examples=25, stateful_step_count=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
TableModel.TestCase.settings = SETTINGS
UserTableModel.TestCase.settings = settings(SETTINGS, max_examples=12)
test_table_model = TableModel.TestCase
test_user_table_model = UserTableModel.TestCase
