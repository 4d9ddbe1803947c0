"""A query reading Parquet files of wide rows (`duckdb_wide_row_bytes` stored
bytes a row or more) runs on the single-threaded DuckDB, whatever the rows it
reads: each further DuckDB thread held ~25 MB more of a wide column's pages
(docs/performance.md, issue 15, rss2). Narrow files go by rows read, as before."""

from __future__ import annotations

import os

import pytest

from storage import engine as engine_mod
from storage.engine import Engine

from .conftest import Run, col


def test_wide_files_run_on_one_thread(engine: Engine, run: Run,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "SMALL_QUERY_ROWS", 10)  # 300 rows: "large"
    engine.create_table("app", "wide", "shared", [col("id", "BIGINT", primary_key=True),
                                                  col("b", "BYTES")])
    engine.create_table("app", "narrow", "shared", [col("id", "BIGINT", primary_key=True),
                                                    col("v", "BIGINT")])
    payload = {i: os.urandom(1000) for i in range(300)}
    values = ", ".join(f"({i}, from_hex('{p.hex()}'))" for i, p in payload.items())
    run(f"INSERT INTO app.wide VALUES {values}")
    run("INSERT INTO app.narrow SELECT range, range * 2 FROM range(300)")
    engine.flush_table("app", "wide")
    engine.flush_table("app", "narrow")
    for table, text, want in (
        ("wide", "SELECT id, b FROM app.wide WHERE id % 7 = 3 ORDER BY id",
         [{"id": i, "b": payload[i]} for i in range(300) if i % 7 == 3]),
        ("narrow", "SELECT id, v FROM app.narrow WHERE id % 7 = 3 ORDER BY id",
         [{"id": i, "v": i * 2} for i in range(300) if i % 7 == 3]),
    ):
        before = dict(engine.duckdb_runs)
        assert run(text) == want
        ran = {k: engine.duckdb_runs[k] - before.get(k, 0) for k in ("small", "main")}
        assert ran == ({"small": 1, "main": 0} if table == "wide" else {"small": 0, "main": 1})
    engine.cfg.duckdb_wide_row_bytes = 0  # type: ignore[attr-defined]  # off: by rows read
    before = dict(engine.duckdb_runs)
    run("SELECT id, b FROM app.wide WHERE id % 7 = 3")
    assert engine.duckdb_runs["main"] - before.get("main", 0) == 1
