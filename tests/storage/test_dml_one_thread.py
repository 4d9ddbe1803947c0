"""An UPDATE's or DELETE's scan runs on the single-threaded DuckDB whatever the
table's size (dml.py `_matching`): each DuckDB thread holds a row group of
every column it reads, and for a wide table that scan was the statement's
RSS peak. A SELECT of the same table still runs on the main DuckDB; memory is
handed back after the statement as after any query there."""

from __future__ import annotations

import pytest

from storage import allocator
from storage import engine as engine_mod
from storage.engine import Engine

from .conftest import Run, col


def test_update_and_delete_scan_on_one_thread(engine: Engine, run: Run,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                col("v", "BIGINT"), col("p", "VARCHAR")])
    run("INSERT INTO app.t SELECT i, i, repeat('x', 100) FROM range(50) r(i)")
    engine.flush_table("app", "t")
    run("INSERT INTO app.t SELECT i, i, repeat('y', 100) FROM range(50, 60) r(i)")
    monkeypatch.setattr(engine_mod, "SMALL_QUERY_ROWS", 1)  # every table counts as large
    purges: list[int] = []
    real_purge = allocator.purge

    def purge() -> bool:
        purges.append(1)
        return real_purge()

    monkeypatch.setattr(engine_mod.allocator, "purge", purge)

    def ran(sql: str) -> tuple[str, int]:
        before, purged = dict(engine.duckdb_runs), len(purges)
        run(sql)
        [(which, n)] = [(k, v - before.get(k, 0)) for k, v in engine.duckdb_runs.items()
                        if v != before.get(k, 0)]
        assert n == 1
        return which, min(1, len(purges) - purged)  # handed back at least once

    assert ran("SELECT id FROM app.t WHERE id % 10 = 0") == ("main", 1)
    assert ran("UPDATE app.t SET v = -v WHERE id % 10 = 0") == ("small", 1)
    assert ran("DELETE FROM app.t WHERE id % 10 = 1") == ("small", 1)
    rows = run("SELECT id, v, p FROM app.t WHERE id % 10 IN (0, 1) ORDER BY id")
    assert rows == [{"id": i, "v": -i, "p": ("x" if i < 50 else "y") * 100}
                    for i in range(0, 60, 10)]
    assert run("SELECT count(*) AS n FROM app.t") == [{"n": 54}]
