"""An INSERT's exact duplicate-key check read off the buffer's key index
(storage/keys.py `buffered_versions`) must decide exactly as the DuckDB check
over the whole buffer does: the same errors (code and message), the same rows
after, the same keys brought back from soft deletion. The model is a second
engine with the index answer switched off, fed the same seeded statements."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from catalog import Namespace
from catalog.errors import CairnError
from storage import keys
from storage.buffer import encode
from storage.engine import Engine

from .conftest import col, open_engine


def _statements(seed: int, user_table: bool) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    out: list[tuple[str, str | None]] = []
    users = ["ann", "bo"] if user_table else [None]
    lo = 0  # each flush moves on to new keys (a file's key range would send them to DuckDB)
    for _ in range(160):
        u = rng.choice(users)
        k = lo + rng.randrange(12) if rng.random() < 0.9 else rng.randrange(lo + 12)
        roll = rng.random()
        if roll < 0.45:
            out.append((f"INSERT INTO app.t VALUES ({k}, 'k{k % 3}', {rng.randrange(9)})", u))
        elif roll < 0.6:
            rows = ", ".join(f"({lo + rng.randrange(12)}, 'k{rng.randrange(3)}', 1)"
                             for _ in range(rng.randrange(1, 4)))
            out.append((f"INSERT INTO app.t VALUES {rows}", u))
        elif roll < 0.75:
            out.append((f"DELETE FROM app.t WHERE a = {k}", u))
        elif roll < 0.85:
            out.append((f"UPDATE app.t SET v = v + 1 WHERE a = {k}", u))
        elif roll < 0.87:
            out.append(("FLUSH", None))
            lo += 20
        else:
            out.append((f"INSERT INTO app.t (a, b) VALUES ({k}, 'k{k % 3}'), "
                        f"({k + 1}, 'k{k % 3}')", u))
    return out


def _replay(path: Path, statements: list[tuple[str, str | None]], user_table: bool) -> list:
    catalog, engine = open_engine(path)
    catalog.put(Namespace("app"))
    out = []
    try:
        engine.create_table("app", "t", "user" if user_table else "shared",
                            [col("a", "BIGINT", primary_key=True),
                             col("b", "TEXT", primary_key=True), col("v")])
        for text, user in statements:
            if text == "FLUSH":
                engine.flush_table("app", "t")
                continue
            try:
                out.append(engine.execute(sqlglot.parse_one(text, read="duckdb"), user, "app"))
            except CairnError as exc:
                out.append((type(exc).__name__, str(exc)))
        for user in (["ann", "bo"] if user_table else [None]):
            q = sqlglot.parse_one("SELECT a, b, v, _deleted FROM app.t ORDER BY a, b",
                                  read="duckdb")
            out.append(_rows(engine, q, user))
    finally:
        engine.close()
        catalog.close()
    return out


def _rows(engine: Engine, q: exp.Expression, user: str | None) -> list:
    return engine.query(q, user, "app").to_pylist()


@pytest.mark.parametrize("user_table", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_index_check_equals_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   seed: int, user_table: bool) -> None:
    statements = _statements(seed, user_table)
    used = [0]
    real = keys.buffered_versions

    def counting(*a: object, **kw: object) -> object:
        got = real(*a, **kw)  # type: ignore[arg-type]
        used[0] += got is not None
        return got

    monkeypatch.setattr(keys, "buffered_versions", counting)
    fast = _replay(tmp_path / "fast", statements, user_table)
    assert used[0] >= 10  # the index answered many checks
    monkeypatch.setattr(keys, "buffered_versions", lambda *a, **kw: None)
    slow = _replay(tmp_path / "slow", statements, user_table)
    assert fast == slow
    assert any(isinstance(r, tuple) and r[0] == "AlreadyExists" for r in fast)


def test_encode_is_the_ipc_stream() -> None:
    t = pa.table({"_seq": pa.array([1, 2], pa.int64()), "s": ["x", None]})
    for rows, user in ((t, None), (t, "ann"), (pa.concat_tables([t, t.slice(1)]), None)):
        meta = {b"cairn.v": b"3", b"cairn.ts": b"1.5"}
        if user is not None:
            meta[b"cairn.user"] = user.encode()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema.with_metadata(meta)) as writer:
            writer.write_table(rows.replace_schema_metadata(meta))
        assert encode(rows, 3, 1.5, user) == sink.getvalue().to_pybytes()
