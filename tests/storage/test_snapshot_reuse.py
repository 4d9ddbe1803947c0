"""A BACKUP's snapshot leaves its conversion of the buffer in the table's
cache (`TableState.keep_conversion`), so the next snapshot converts only the
batches written since; what each exports stays exactly the buffer's rows."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage import buffer, snapshot
from storage.engine import Engine

from .conftest import Run, col


def _exported(engine: Engine, table: str) -> list[dict[str, Any]]:
    """The rows a snapshot of namespace app exports for `table`'s buffer,
    sorted by `_seq`, read back from its Parquet files."""
    with engine.snapshot({"app": None}) as snap:
        (image,) = snap.namespaces
        paths = [f.path for f in image.files
                 if f.temporary and f.path.name.startswith(engine.table("app", table).uid)]
        rows = [r for p in paths for r in pq.read_table(p).to_pylist()]
    return sorted(rows, key=lambda r: r["_seq"])


def _fresh(engine: Engine, table: str) -> list[dict[str, Any]]:
    """The same rows converted from nothing: every batch, no cache."""
    st = engine.state("app", table)
    with st.lock:
        batches = list(st.batches.values())
        loose, strict = st.loose_schema(), st.row_schema()
    parts = buffer.conform_batches(batches, st.table, st.columns, st.schema.version, loose, strict)
    rows = pa.concat_tables(parts).to_pylist() if parts else []
    return sorted(rows, key=lambda r: r["_seq"])


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    """How many batches each conversion of `module` (snapshot or flush)
    converts, beyond what a cached conversion held."""
    seen: list[int] = []
    real = module.convert_after

    def counting(base: Any, start: int, batches: list[Any], *args: Any) -> pa.Table:
        seen.append(len(batches) - start)
        return real(base, start, batches, *args)

    monkeypatch.setattr(module, "convert_after", counting)
    return seen


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many batches each snapshot's conversion was handed."""
    return _counting(monkeypatch, snapshot)


def test_a_second_snapshot_converts_only_what_was_written_since(
        engine: Engine, run: Run, converted: list[int]) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                   col("v", "TEXT")])
    for i in range(30):
        run(f"INSERT INTO app.t VALUES ({i}, 'a{i}')")
    first = _exported(engine, "t")
    assert converted == [30] and len(first) == 30
    for i in range(30, 35):
        run(f"INSERT INTO app.t VALUES ({i}, 'b{i}')")
    run("UPDATE app.t SET v = 'changed' WHERE id = 3")
    second = _exported(engine, "t")
    assert converted == [30, 6]  # five INSERTs and the UPDATE's batch
    assert second == _fresh(engine, "t") and len(second) == 36
    assert [r["v"] for r in second if r["id"] == 3] == ["a3", "changed"]
    third = _exported(engine, "t")  # nothing new: nothing converted
    assert converted == [30, 6, 0] and third == second


def test_a_flush_drops_the_kept_conversion(engine: Engine, run: Run,
                                           converted: list[int]) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                   col("v", "TEXT")])
    for i in range(10):
        run(f"INSERT INTO app.t VALUES ({i}, 'a')")
    _exported(engine, "t")
    st = engine.state("app", "t")
    with st.lock:
        assert st.cached_buffer() is not None
    engine.flush_table("app", "t")
    with st.lock:
        assert st.cached_buffer() is None
    for i in range(10, 13):
        run(f"INSERT INTO app.t VALUES ({i}, 'b')")
    rows = _exported(engine, "t")
    assert converted == [10, 3] and [r["id"] for r in rows] == [10, 11, 12]


def test_after_alter_the_rows_have_the_new_column(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                   col("v", "TEXT")])
    for i in range(5):
        run(f"INSERT INTO app.t VALUES ({i}, 'a')")
    _exported(engine, "t")
    engine.add_column("app", "t", col("w", "INT"))
    run("INSERT INTO app.t VALUES (5, 'b', 7)")
    rows = _exported(engine, "t")
    assert rows == _fresh(engine, "t")
    assert [(r["id"], r["w"]) for r in rows] == [(0, None), (1, None), (2, None), (3, None),
                                                 (4, None), (5, 7)]


def test_user_tables_keep_every_users_rows(engine: Engine, run: Run,
                                           converted: list[int]) -> None:
    engine.create_table("app", "u", "user", [col("id", "BIGINT", primary_key=True),
                                                   col("v", "TEXT")])
    for i in range(4):
        run(f"INSERT INTO app.u VALUES ({i}, 'x')", user="alice")
        run(f"INSERT INTO app.u VALUES ({i}, 'y')", user="bob")
    _exported(engine, "u")
    run("INSERT INTO app.u VALUES (9, 'z')", user="bob")
    rows = _exported(engine, "u")
    assert converted == [8, 1] and rows == _fresh(engine, "u")
    assert sorted((r["_user"], r["id"]) for r in rows if r["id"] == 9) == [("bob", 9)]
    assert run("SELECT id, v FROM app.u ORDER BY id", user="alice") == [
        {"id": i, "v": "x"} for i in range(4)]


def test_not_kept_when_too_large_or_stale(engine: Engine, run: Run,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                                   col("v", "TEXT")])
    for i in range(5):
        run(f"INSERT INTO app.t VALUES ({i}, 'a')")
    st = engine.state("app", "t")
    monkeypatch.setattr(buffer, "KEEP_CONVERSION_BYTES", 10)
    _exported(engine, "t")
    with st.lock:
        assert st.cached_buffer() is None
    monkeypatch.setattr(buffer, "KEEP_CONVERSION_BYTES", 8 << 20)
    with st.lock:  # a conversion made before a batch went: never kept
        mark = st.conversion_mark()
        keys = tuple(st.batches)
    rows = pa.table({"id": pa.array([0], pa.int64())})
    engine.flush_table("app", "t")
    for i in range(5, 10):  # as many batches again: only the generation tells
        run(f"INSERT INTO app.t VALUES ({i}, 'b')")
    st.keep_conversion(st.schema.version, keys, rows, mark)
    with st.lock:
        assert st.cached_buffer() is None


def test_a_flush_after_a_snapshot_converts_only_the_rest(
        engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage import flush
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                               col("v", "TEXT")])
    for i in range(20):
        run(f"INSERT INTO app.t VALUES ({i}, 'a{i}')")
    _exported(engine, "t")
    seen = _counting(monkeypatch, flush)
    for i in range(20, 23):
        run(f"INSERT INTO app.t VALUES ({i}, 'b{i}')")
    run("DELETE FROM app.t WHERE id = 5")
    expected = _fresh(engine, "t")
    engine.flush_table("app", "t")
    assert seen == [4]  # three INSERTs and the DELETE's batch
    (f,) = engine.state("app", "t").files
    written = sorted(pq.read_table(engine.files.abs(f.path)).to_pylist(), key=lambda r: r["_seq"])
    assert written == expected and len(written) == 24
    assert run("SELECT count(*) AS n FROM app.t") == [{"n": 22}]


def test_a_flush_ignores_a_conversion_of_other_batches(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                               col("v", "TEXT")])
    for i in range(3):
        run(f"INSERT INTO app.t VALUES ({i}, 'a')")
    st = engine.state("app", "t")
    with st.lock:  # a conversion whose batches do not lead the buffer (none does, here)
        wrong = pa.table({"id": [99]}).cast(pa.schema([pa.field("id", pa.int64())]))
        st._cache["*"] = (st.schema.version, (b"\x00" * 8,), wrong)  # noqa: SLF001
    expected = _fresh(engine, "t")
    engine.flush_table("app", "t")
    (f,) = st.files
    written = sorted(pq.read_table(engine.files.abs(f.path)).to_pylist(), key=lambda r: r["_seq"])
    assert written == expected and [r["id"] for r in written] == [0, 1, 2]


def test_a_flush_converts_everything_when_the_cached_shape_differs(
        engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                               col("v", "TEXT")])
    for i in range(3):
        run(f"INSERT INTO app.t VALUES ({i}, 'a')")
    st = engine.state("app", "t")
    with st.lock:  # the first batch's key, but a table of another schema
        first = next(iter(st.batches))
        st._cache["*"] = (st.schema.version, (first,), pa.table({"x": [1]}))  # noqa: SLF001
    expected = _fresh(engine, "t")
    engine.flush_table("app", "t")
    (f,) = st.files
    written = sorted(pq.read_table(engine.files.abs(f.path)).to_pylist(), key=lambda r: r["_seq"])
    assert written == expected


def test_a_snapshot_converts_everything_when_the_cached_shape_differs(
        engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                               col("v", "TEXT")])
    for i in range(3):
        run(f"INSERT INTO app.t VALUES ({i}, 'a')")
    st = engine.state("app", "t")
    with st.lock:
        first = next(iter(st.batches))
        st._cache["*"] = (st.schema.version, (first,), pa.table({"x": [1]}))  # noqa: SLF001
    rows = _exported(engine, "t")
    assert rows == _fresh(engine, "t") and [r["id"] for r in rows] == [0, 1, 2]


def test_snapshots_beside_writers_and_flushes_export_exactly_their_batches(
        engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots back to back while a thread inserts, updates and deletes and
    another flushes: every snapshot's buffer rows are those of the batches it
    captured, converted from nothing, whatever the cache held."""
    import threading

    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True),
                                               col("v", "TEXT")])
    checked: list[int] = []
    wrong: list[str] = []
    real = snapshot._buffer  # noqa: SLF001

    def checking(c: Any) -> pa.Table | None:
        rows = real(c)
        if c.batches is not None and rows is not None:
            parts = buffer.conform_batches(c.batches, c.table, c.columns, c.version,
                                           c.schema, c.strict)
            want = pa.concat_tables([c.schema.empty_table(), *parts])
            if rows.to_pylist() != want.to_pylist():
                wrong.append(f"{rows.num_rows} rows against {want.num_rows}")
            checked.append(rows.num_rows)
        return rows

    monkeypatch.setattr(snapshot, "_buffer", checking)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            run(f"INSERT INTO app.t VALUES ({i}, 'v{i}')")
            if i % 7 == 3:
                run(f"UPDATE app.t SET v = 'u' WHERE id = {i - 2}")
            if i % 11 == 5:
                run(f"DELETE FROM app.t WHERE id = {i - 4}")
            i += 1

    def flush() -> None:
        while not stop.wait(0.15):
            engine.flush_table("app", "t")

    threads = [threading.Thread(target=write), threading.Thread(target=flush)]
    for t in threads:
        t.start()
    try:
        for _ in range(40):
            with engine.snapshot({"app": None}):
                pass
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not wrong, wrong[:5]
    assert len(checked) == 40 and max(checked) > 0
