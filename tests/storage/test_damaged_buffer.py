"""A write-buffer record damaged at rest (its Arrow IPC value cut short): the
table answers a clear INTERNAL "its buffered rows are damaged", said once in
the log; the other tables keep working and being flushed, system.tables still
lists it, and DROP TABLE drops it. Before: every statement on it was 500 "this
is a bug" with ArrowInvalid's trace, system.tables left it out in silence, and
the automatic flush loop died at it every second (no table was flushed)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog import Catalog, Namespace
from catalog.errors import Internal
from storage import bufstore
from storage.engine import Engine

from .conftest import Cfg, Run, col, runner


@pytest.fixture
def damaged(tmp_path: Path) -> Iterator[Engine]:
    data = tmp_path / "data"
    catalog = Catalog(data / "catalog")
    engine = Engine(catalog, data, Cfg(flush_rows=2))
    catalog.put(Namespace("app"))
    for name in ("bad", "good"):
        engine.create_table("app", name, "shared", [col("id", "BIGINT", primary_key=True),
                                                     col("v", "TEXT")])
        runner(engine)(f"INSERT INTO app.{name} VALUES (1, 'a')")
    uid = engine.tables.state("app", "bad").uid
    engine.close()
    ((key, value),) = list(bufstore.entries(catalog, uid))
    catalog.batch().put_raw(bufstore.FAMILY, bufstore.prefix(uid) + key,
                            value[: len(value) // 2]).commit()
    catalog.close()
    catalog = Catalog(data / "catalog")
    engine = Engine(catalog, data, Cfg(flush_rows=2))
    yield engine
    engine.close()
    catalog.close()


def test_a_damaged_buffer_is_a_clear_error_and_the_rest_goes_on(
        damaged: Engine, caplog: pytest.LogCaptureFixture) -> None:
    run: Run = runner(damaged)
    with caplog.at_level(logging.WARNING, logger="cairn.storage"):
        for sql in ("SELECT * FROM app.bad", "SELECT v FROM app.bad WHERE id = 1",
                    "INSERT INTO app.bad VALUES (2, 'b')"):
            with pytest.raises(Internal, match=r"Table 'app.bad' cannot be read: its buffered "
                                               r"rows are damaged"):
                run(sql)
        # The automatic flush and stream eviction skip it; the others are flushed.
        damaged.evict_streams()
        run("INSERT INTO app.good VALUES (2, 'b')")
        assert damaged.tables_needing_flush() == [("app", "good")]
        damaged.flush_table("app", "good")
        assert run("SELECT count(*) AS n FROM app.good") == [{"n": 2}]
        listed = run("SELECT table_name, buffered_rows, flushed_rows FROM system.tables "
                     "ORDER BY table_name")
        assert listed == [{"table_name": "bad", "buffered_rows": None, "flushed_rows": None},
                          {"table_name": "good", "buffered_rows": 0, "flushed_rows": 2}]
    said = [r for r in caplog.records if "app.bad" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING, caplog.text
    assert "damaged" in said[0].getMessage() and said[0].exc_info is None
    assert damaged.drop_table("app", "bad")
    assert [t.name for t in damaged.list_tables("app")] == ["good"]
