"""A fast-path point SELECT answered from its typed description, without a
tree (storage/fast.py), must answer exactly as the statement's tree does
through `Engine.query`, or not at all (None: the caller runs the tree): the
same rows, names, Arrow types and schema metadata; and never where the tree
path refuses the statement. Seeded statements over the seeded write workload
of test_direct.py (versions, soft deletes, re-inserts, flushes, ADD COLUMN,
a USER table with a text key)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from catalog.errors import CairnError
from server.queries import fold_names
from sqlgrammar.fastpath import FastSelect, parse_fast_lazy
from storage import fast
from storage.engine import Engine
from storage.limits import ResultLimits

from .conftest import Run, col
from .test_direct import _point_workload

COLUMNS = ["id", "v", "t", "w", "ID", "V", "nope", "_seq", "_deleted", "k"]


def _statement(rng: random.Random, k: int) -> str:
    if rng.random() < 0.5:  # one the typed path can answer: a key that may be buffered
        if rng.random() < 0.5:
            cols = rng.sample(["id", "v", "t", "_deleted", "_updated"], rng.randint(1, 4))
            value = rng.choice([str(k), str(k), f"-{k}", f"'{k}'"])
            return f"SELECT {', '.join(cols)} FROM {rng.choice(['app.s', 's'])} WHERE id = {value}"
        cols = rng.sample(["k", "v", "_updated"], rng.randint(1, 3))
        value = rng.choice([f"'k{k}'", f"'k{k}'", f"'K{k}'", str(k)])
        return f"SELECT {', '.join(cols)} FROM {rng.choice(['app.u', 'u'])} WHERE k = {value}"
    table = rng.choice(["app.s", "APP.S", "s", "app.u", "u", "App.U", "system.jobs", "other.s",
                        "app.nope"])
    cols = rng.sample(COLUMNS, rng.randint(1, 3))
    if rng.random() < 0.1:
        cols.append(cols[0])  # a column twice
    key = rng.choice(["id", "id", "k", "k", "ID", "v", "_deleted"])
    value = rng.choice([str(k), f"-{k}", f"'{k}'", f"'k{k}'", f"{k}.0", "''", "'it''s'",
                        "0" * 120 + "1", str(2**70)])
    sql = f"SELECT {', '.join(cols)} FROM {table} WHERE {key} = {value}"
    return sql.lower() if rng.random() < 0.2 else sql


def _tree_answer(engine: Engine, sql: str, user: str | None, ns: str | None) -> object:
    found = parse_fast_lazy(sql)
    assert found is not None
    tree = found[1]()
    fold_names(tree, small=True)
    try:
        return engine.query(tree, user, ns, limits=LIMITS, owned=True, small=True)
    except CairnError as exc:
        return (exc.code, exc.message)


LIMITS = ResultLimits(max_rows=1000, max_bytes=1 << 20)


@pytest.mark.parametrize("seed", [3, 4])
def test_typed_point_select_answers_as_the_tree(engine: Engine, run: Run, seed: int) -> None:
    engine.create_table("app", "s", "shared", [col("id", "BIGINT", primary_key=True), col("v"),
                                               col("t", "TEXT")])
    engine.create_table("app", "u", "user", [col("k", "TEXT", primary_key=True), col("v")])
    rng = random.Random(seed)
    counts = {"typed": 0, "tree": 0}

    def check(some: list[int]) -> None:
        for k in some:
            for _ in range(16):
                sql = _statement(rng, k)
                found = parse_fast_lazy(sql)
                if found is None or not isinstance(found[2], FastSelect):
                    continue
                f = found[2]
                user, ns = rng.choice([("ann", "app"), ("bo", None), (None, "app")])
                want = _tree_answer(engine, sql, user, ns)
                got = fast.select(engine, f.db, f.table, f.columns, f.key, f.text,
                                   f.is_string, f.negative, user, ns, None, LIMITS)
                if got is None:
                    counts["tree"] += 1
                    continue
                counts["typed"] += 1
                assert isinstance(want, pa.Table), (sql, user, ns, want)
                assert got.to_pylist() == want.to_pylist(), (sql, user, ns)
                assert got.schema.equals(want.schema, check_metadata=True), (sql, user, ns)

    _point_workload(engine, run, seed, check)
    assert counts["typed"] >= 10 and counts["tree"] >= 100, counts
    assert not +engine.files._pins  # every snapshot's pin given back, answered or not
