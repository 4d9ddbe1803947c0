"""A single-row INSERT's batch stays in the buffer as its Python values
(storage/batch.py `OneRow`), not as a one-row Arrow table (~5 KB of C++ objects
and buffers a row: 4,200 buffered INSERTs held ~22 MB of RSS). What it gives
back must be what the buffer stored: the table decoded from its RocksDB value,
the same answers to queries, point lookups, flushes and a restart."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from catalog import Namespace
from storage import batch as batch_mod
from storage.batch import OneRow
from storage.buffer import decode

from .conftest import col, open_engine, runner

COLS = [col("k", "TEXT", primary_key=True), col("i", "BIGINT"), col("d", "DOUBLE"),
        col("m", "DECIMAL", 12, 3), col("ts", "TIMESTAMP"), col("b", "BYTES"),
        col("ok", "BOOLEAN"), col("j", "JSON"), col("s", "SMALLINT")]

ROWS = [
    "('a', 1, 1.5, 12.345, TIMESTAMP '2020-01-02 03:04:05.123456', '\\x00\\xff'::BLOB, true, "
    "'{\"x\": [1, 2]}', 7)",
    "('b', NULL, -0.0, NULL, NULL, NULL, NULL, NULL, NULL)",
    "('c', -9223372036854775808, 1e300, -999999999.999, TIMESTAMP '1970-01-01', ''::BLOB, "
    "false, '[]', -32768)",
    "('é', 9223372036854775807, NULL, 0.001, TIMESTAMP '2262-04-11 23:47:16', 'xyz'::BLOB, "
    "true, 'null', 32767)",
]
QUERIES = ["SELECT k, i, d, m, ts, b, ok, j, s, _deleted FROM app.t ORDER BY k",
           "SELECT k, i FROM app.t WHERE k = 'c'", "SELECT k, d FROM app.t WHERE k = 'é'",
           "SELECT k, i FROM app.t WHERE k = 'zz'",
           "SELECT count(*) AS n FROM app.t"]


@pytest.mark.parametrize("chunk", [None, 2])
def test_single_row_batches_keep_values_and_give_back_what_was_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int | None) -> None:
    """(`chunk` 2: runs of OneRow converted two rows at a time, as a buffer
    of more than ONE_ROW_CHUNK single-row INSERTs is.)"""
    if chunk is not None:
        monkeypatch.setattr(batch_mod, "ONE_ROW_CHUNK", chunk)
    catalog, engine = open_engine(tmp_path / "data")
    catalog.put(Namespace("app"))
    run = runner(engine)
    engine.create_table("app", "t", "shared", COLS)
    for r in ROWS:
        run(f"INSERT INTO app.t VALUES {r}")
    run("INSERT INTO app.t VALUES ('m1', 1, 1, 1, NULL, NULL, NULL, NULL, 1), "
        "('m2', 2, 2, 2, NULL, NULL, NULL, NULL, 2)")  # two rows: an Arrow table as before
    st = engine.state("app", "t")
    kinds = [type(b).__name__ for b in st.batches.values()]
    assert kinds == ["OneRow"] * len(ROWS) + ["BufBatch"]
    for b in st.batches.values():
        if isinstance(b, OneRow):
            assert not any(isinstance(v, pa.Table | pa.Array | pa.RecordBatch)
                           for v in vars(b).values())
            stored = decode(b.key, catalog.get_raw(st.family, st.prefix + b.key) or b"")
            assert b.rows.equals(stored.rows, check_metadata=True)
            assert b.rows.schema.equals(stored.rows.schema, check_metadata=True)
    before = [run(q) for q in QUERIES]
    # A point lookup, and an UPDATE of a buffered row (and back).
    assert run("SELECT i FROM app.t WHERE k = 'a'") == [{"i": 1}]
    run("UPDATE app.t SET i = 5 WHERE k = 'b'")
    assert run("SELECT i FROM app.t WHERE k = 'b'") == [{"i": 5}]
    run("UPDATE app.t SET i = NULL WHERE k = 'b'")
    assert [run(q) for q in QUERIES] == before
    engine.close()
    catalog.close()
    catalog, engine = open_engine(tmp_path / "data")  # the buffer decoded from RocksDB
    run = runner(engine)
    assert not any(isinstance(b, OneRow) for b in engine.state("app", "t").batches.values())
    assert [run(q) for q in QUERIES] == before
    engine.flush_table("app", "t")
    assert [run(q) for q in QUERIES] == before
    engine.close()
    catalog.close()


def test_matches_says_only_what_the_values_can_tell() -> None:
    schema = pa.schema([("k", pa.int64()), ("s", pa.string()), ("f", pa.float32()),
                        ("o", pa.bool_())])
    b = OneRow(b"k", 1, 0.0, None, (3, "x", 0.1, True), schema, pa.struct(list(schema)))
    assert b.matches({"k": 3, "s": "x", "o": True}) is True
    assert b.matches({"k": 4}) is False
    assert b.matches({"s": "y"}) is False
    assert b.matches({"k": True}) is None  # a bool asked of an integer column
    assert b.matches({"f": 0.1}) is None  # float32: Arrow reads back another value
    assert b.matches({"nope": 1}) is None
    assert b.rows.column("f")[0].as_py() != 0.1
    assert b.rows.to_pylist() == [{"k": 3, "s": "x", "f": b.rows.column("f")[0].as_py(),
                                   "o": True}]


def test_plain_values_are_what_arrow_gives_back() -> None:
    """batch_keys (the buffer's key index) reads a OneRow's key from its values
    only where they equal Arrow's reading of them."""
    from storage.keys import batch_keys
    schema = pa.schema([("k", pa.int16()), ("s", pa.string()), ("f", pa.float64()),
                        ("n", pa.int64()), ("o", pa.bool_()), ("x", pa.int64())])
    b = OneRow(b"k", 1, 0.0, None, (3, "é", 0.5, None, False, 7), schema,
               pa.struct(list(schema)))
    table = b.rows
    for name in schema.names:
        ok, value = b.plain_value(name)
        if ok:
            assert table.column(name).to_pylist() == [value]
    assert [b.plain_value(n)[0] for n in schema.names] == [True, True, False, True, True, True]
    odd = OneRow(b"k", 1, 0.0, None, (True, "x", 1.0, 1, 1, 1), schema, pa.struct(list(schema)))
    assert not odd.plain_value("k")[0]  # a bool in an integer column: only Arrow can say
    for pk in (["k"], ["s", "k"], ["f"], ["k", "x"]):
        assert batch_keys(b, pk, False) == batch_keys(
            OneRowTable(b), pk, False), pk


class OneRowTable:
    """The same batch as an Arrow table (what batch_keys read before)."""

    def __init__(self, b: OneRow) -> None:
        self.rows, self.user = b.rows, b.user
