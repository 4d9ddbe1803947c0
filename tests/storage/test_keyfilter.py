"""Per-file key filters (storage/keyfilter.py): the duplicate-key check skips a
file only when its filter proves the key is not in it. A filter that missed a
key would let a duplicate in, so every test here that expects ALREADY_EXISTS
for a key in a file (flushed, rebuilt after a restart, holding UPDATE/DELETE
versions, over the budget) fails with such a filter. Skips are read from the
filters' own counts and the engine's `duckdb_runs`."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from catalog import Namespace
from catalog.errors import AlreadyExists
from storage import keyfilter
from storage.engine import Engine
from storage.query import take_snapshot

from .conftest import Run, col, open_engine, runner

CLIENTS = 16
STEP = 10**7


def _key(client: int, i: int) -> int:
    """The bench's interleaved key spaces (bench/bench_archive.py restore)."""
    return 10**12 + client * STEP + i


def _fill(run: Run, engine: Engine, files: int, per_client: int = 3) -> list[int]:
    """`files` flushed files, each holding keys of all 16 clients: every
    file's key range covers the keys still to come."""
    keys = []
    for f in range(files):
        rows = []
        for c in range(CLIENTS):
            for j in range(per_client):
                k = _key(c, f * per_client + j)
                keys.append(k)
                rows.append(f"({k}, {c})")
        run(f"INSERT INTO app.t VALUES {', '.join(rows)}")
        engine.flush_table("app", "t")
    return keys


def _runs(engine: Engine) -> int:
    return sum(engine.duckdb_runs.values())


def _stats(engine: Engine) -> keyfilter.FilterStats:
    s = engine.file_ranges.filters.stats
    return keyfilter.FilterStats(**s.__dict__)


# --- hashing and the filter alone -----------------------------------------------------


def test_python_and_numpy_hash_alike() -> None:
    """One INSERT's keys are hashed in Python, a file's with numpy: equal keys
    must give equal hashes, or the filter of a file misses its keys."""
    rng = random.Random(7)
    ints = [rng.randrange(-2**63, 2**63) for _ in range(500)] + [0, -1, 2**63 - 1, -2**63]
    assert list(keyfilter.hash_arrays([pa.array(ints, pa.int64())], ["int"])) == \
        keyfilter.hash_values([ints], ["int"])
    small = [rng.randrange(-2**15, 2**15) for _ in range(100)]
    assert list(keyfilter.hash_arrays([pa.array(small, pa.int16())], ["int"])) == \
        keyfilter.hash_values([small], ["int"])
    text = ["", "a", "é", "\U0001f600x", "k" * 700, "a\x00b"] + [
        "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(40)))
        for _ in range(400)]
    chunked = pa.chunked_array([pa.array(text[:150]), pa.array(text[150:])])
    assert list(keyfilter.hash_arrays([chunked], ["bytes"])) == \
        keyfilter.hash_values([text], ["bytes"])
    sliced = pa.array(text).slice(5, 100)
    assert list(keyfilter.hash_arrays([sliced], ["bytes"])) == \
        keyfilter.hash_values([text[5:105]], ["bytes"])
    raw = [t.encode() for t in text]
    assert list(keyfilter.hash_arrays([pa.array(raw, pa.binary())], ["bytes"])) == \
        keyfilter.hash_values([raw], ["bytes"])
    assert list(keyfilter.hash_arrays([pa.array(ints[:406]), pa.array(text)],
                                      ["int", "bytes"])) == \
        keyfilter.hash_values([ints[:406], text], ["int", "bytes"])
    # the text hash is of the bytes, whatever the chunk size
    big = ["x" * 3000 + str(i) for i in range(300)]
    assert list(keyfilter.hash_arrays([pa.array(big)], ["bytes"])) == \
        keyfilter.hash_values([big], ["bytes"])


@pytest.mark.parametrize("n", [200_000, 5_000, 0])
def test_no_false_negatives_and_few_false_positives(n: int) -> None:
    """Past EXACT_KEYS keys a Bloom filter (~0.1% false hits), up to it the
    keys' sorted hashes (none); neither misses a key it was built from."""
    keys = np.arange(n, dtype=np.int64) * 7919
    kf = keyfilter.KeyFilter.build(keyfilter.hash_arrays([pa.array(keys)], ["int"]))
    assert kf.exact == (n <= keyfilter.EXACT_KEYS)
    held = keys[::97].tolist()
    assert all(kf.may_hold(keyfilter.Probe(keyfilter.hash_values([[k]], ["int"]))) for k in held)
    if held:
        assert kf.may_hold(keyfilter.Probe(keyfilter.hash_arrays([pa.array(held)], ["int"])))
        both = held[:50] + [k * 7919 + 1 for k in range(50)]  # numpy: one held key is enough
        assert kf.may_hold(keyfilter.Probe(keyfilter.hash_arrays([pa.array(both)], ["int"])))
    absent = [k * 7919 + 1 for k in range(20_000)]
    hits = sum(kf.may_hold(keyfilter.Probe(keyfilter.hash_values([[k]], ["int"])))
               for k in absent)
    assert hits < len(absent) * 0.01 if n > keyfilter.EXACT_KEYS else hits == 0  # ~0.1% / none
    if kf.exact:
        assert not kf.may_hold(keyfilter.Probe(keyfilter.hash_arrays([pa.array(absent)],
                                                                     ["int"])))
    assert kf.nbytes == (max(64 * 8, n * keyfilter.BITS_PER_KEY // 8) if not kf.exact
                         else 8 * n)


def test_unhashable_keys_give_no_probe() -> None:
    assert keyfilter.kinds_of([{"name": "d", "type": "DATE"}], ["d"]) is None
    assert keyfilter.kinds_of([{"name": "a", "type": "BIGINT"}, {"name": "b", "type": "TEXT"}],
                              ["a", "b"]) == ["int", "bytes"]
    assert keyfilter.hash_values([["\ud800"]], ["bytes"]) is None  # not encodable
    assert keyfilter.hash_values([[True]], ["int"]) is None


# --- the duplicate-key check ----------------------------------------------------------


def test_interleaved_keys_skip_every_file(engine: Engine, run: Run) -> None:
    """The bench's shape: every file's range covers the new keys, yet a new
    key touches no file, and a key of any file is refused."""
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    keys = _fill(run, engine, files=12)
    assert len(engine.state("app", "t").files) == 12
    before, runs = _stats(engine), _runs(engine)
    for c in range(CLIENTS - 1):  # the last client's new keys are above every range
        run(f"INSERT INTO app.t VALUES ({_key(c, 1000)}, {c})")
    after = _stats(engine)
    assert _runs(engine) == runs
    assert after.range_skipped == before.range_skipped  # the ranges rule out nothing
    assert after.filter_skipped - before.filter_skipped == (CLIENTS - 1) * 12
    assert after.checked == before.checked
    for k in keys[::5]:  # a key of every file, and of every client
        with pytest.raises(AlreadyExists, match=str(k)):
            run(f"INSERT INTO app.t VALUES ({k}, 0)")
    with pytest.raises(AlreadyExists):  # many rows: keys hashed with numpy
        rows = ", ".join(f"({_key(15, 5000 + i)}, 1)" for i in range(100))
        run(f"INSERT INTO app.t VALUES {rows}, ({keys[7]}, 1)")
    rows = ", ".join(f"({_key(15, 5000 + i)}, 1)" for i in range(100))
    run(f"INSERT INTO app.t VALUES {rows}")
    assert run("SELECT count(*) AS n FROM app.t") == [{"n": len(keys) + CLIENTS - 1 + 100}]


def test_updated_and_deleted_versions_in_files(engine: Engine, run: Run) -> None:
    """Files holding UPDATE and DELETE versions: an updated key is still
    refused, a deleted one comes back (the check must find its version)."""
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    keys = _fill(run, engine, files=3)
    upd, gone = keys[4], keys[20]
    run(f"UPDATE app.t SET v = 99 WHERE id = {upd}")
    run(f"DELETE FROM app.t WHERE id = {gone}")
    engine.flush_table("app", "t")  # a file of just these versions
    run(f"UPDATE app.t SET v = v + 1 WHERE id >= {keys[30]}")  # many keys: rewritten versions
    engine.flush_table("app", "t")
    with pytest.raises(AlreadyExists):
        run(f"INSERT INTO app.t VALUES ({upd}, 0)")
    with pytest.raises(AlreadyExists):
        run(f"INSERT INTO app.t VALUES ({keys[-1]}, 0)")
    run(f"INSERT INTO app.t VALUES ({gone}, 7)")  # back from soft deletion
    assert run(f"SELECT v FROM app.t WHERE id = {gone}") == [{"v": 7}]
    with pytest.raises(AlreadyExists):
        run(f"INSERT INTO app.t VALUES ({gone}, 8)")


def test_restart_builds_filters_from_the_files(tmp_path: Path) -> None:
    """Nothing of a filter is stored: after a restart each file's filter is
    built from the file itself, on the first check whose keys its range holds."""
    catalog, eng = open_engine(tmp_path / "d")
    catalog.put(Namespace("app"))
    eng.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    keys = _fill(runner(eng), eng, files=5)
    eng.close()
    catalog.close()
    catalog, eng = open_engine(tmp_path / "d")
    try:
        run = runner(eng)
        assert eng.file_ranges.filters.stats.built == 0
        for k in keys[::7]:
            with pytest.raises(AlreadyExists):
                run(f"INSERT INTO app.t VALUES ({k}, 0)")
        assert eng.file_ranges.filters.stats.built == 5
        runs, before = _runs(eng), _stats(eng)
        run(f"INSERT INTO app.t VALUES ({_key(3, 999)}, 1)")
        assert _runs(eng) == runs
        assert _stats(eng).filter_skipped - before.filter_skipped >= 4
    finally:
        eng.close()
        catalog.close()


def test_text_composite_and_user_keys(engine: Engine, run: Run) -> None:
    engine.create_table("app", "s", "shared", [col("k", "TEXT", primary_key=True), col("v")])
    engine.create_table("app", "c", "shared", [col("a", "BIGINT", primary_key=True),
                                               col("b", "TEXT", primary_key=True), col("v")])
    engine.create_table("app", "u", "user", [col("id", "BIGINT", primary_key=True), col("v")])
    for f in range(4):
        run("INSERT INTO app.s VALUES " + ", ".join(f"('a{f}-{i}', 1), ('z{f}-{i}', 1)"
                                                    for i in range(5)))
        run("INSERT INTO app.c VALUES " + ", ".join(f"({i}, 'x{f}', 1)" for i in range(10)))
        for user in ("ann", "bo"):
            run("INSERT INTO app.u VALUES " + ", ".join(f"({_key(c, f)}, 1)" for c in range(16)),
                user=user)
        for t in ("s", "c", "u"):
            engine.flush_table("app", t)
    runs = _runs(engine)
    run("INSERT INTO app.s VALUES ('m-new', 1)")  # inside every file's range
    run("INSERT INTO app.c VALUES (5, 'x9', 1)")
    run(f"INSERT INTO app.u VALUES ({_key(7, 50)}, 1)", user="ann")
    assert _runs(engine) == runs
    for sql, user in (("INSERT INTO app.s VALUES ('z2-3', 0)", None),
                      ("INSERT INTO app.c VALUES (3, 'x1', 0)", None),
                      (f"INSERT INTO app.u VALUES ({_key(9, 2)}, 0)", "bo")):
        with pytest.raises(AlreadyExists):
            run(sql, user=user)
    run(f"INSERT INTO app.u VALUES ({_key(9, 2)}, 0)", user="cy")  # another user's key space


def test_over_the_budget_the_exact_check_reads_the_file(engine: Engine, run: Run,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    monkeypatch.setattr(engine.file_ranges.filters, "budget", 0)
    keys = _fill(run, engine, files=3)
    assert engine.file_ranges.filters.bytes == 0
    assert engine.file_ranges.filters.stats.unfiltered == 3
    runs = _runs(engine)
    run(f"INSERT INTO app.t VALUES ({_key(2, 500)}, 1)")
    assert _runs(engine) == runs + 1  # no filter: DuckDB decides, as before
    with pytest.raises(AlreadyExists):
        run(f"INSERT INTO app.t VALUES ({keys[10]}, 1)")


def test_dropping_a_table_frees_its_filters(engine: Engine, run: Run) -> None:
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    _fill(run, engine, files=3)
    filters = engine.file_ranges.filters
    assert filters.bytes > 0
    engine.drop_table("app", "t")
    assert filters.bytes == 0


def test_point_queries_read_only_files_that_may_hold_the_key(engine: Engine, run: Run) -> None:
    """A point SELECT uses the filters too: of files whose ranges all hold the
    key, it reads only the one that does."""
    engine.create_table("app", "t", "shared", [col("id", "BIGINT", primary_key=True), col("v")])
    keys = _fill(run, engine, files=6)
    st = engine.state("app", "t")
    for k, want in ((keys[60], 1), (_key(4, 999), 0)):
        snap, pin = take_snapshot(st, None, engine.files, {"id": k}, engine.file_ranges)
        engine.files.unpin(pin)
        assert len(snap.files) == want
    assert run(f"SELECT id FROM app.t WHERE id = {keys[60]}") == [{"id": keys[60]}]
    assert run(f"SELECT id FROM app.t WHERE id = {keys[3]} + 0") == [{"id": keys[3]}]
