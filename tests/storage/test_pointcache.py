"""The point cache's own rules (storage/pointcache.py): what `rows` finds in
a cached file, by the sorted copy of an integer key or by a compare, and
what the budget keeps."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.pointcache import PointCache


def _file(tmp_path: Path, name: str, table: pa.Table) -> Path:
    path = tmp_path / name
    pq.write_table(table, path)
    return path


def test_rows_by_the_sorted_key_and_by_a_compare(tmp_path: Path) -> None:
    cache = PointCache(1 << 20)
    ints = pa.table({"k": pa.array([5, -3, 9, 5, 2**40], pa.int64()),
                     "s": pa.array([1, 2, 3, 4, 5], pa.int16())})
    t = cache.load("a", _file(tmp_path, "a.parquet", ints))
    assert t is not None
    assert cache.rows("a", t, "k", 5) == [0, 3]  # every match, in file order
    assert cache.rows("a", t, "k", -3) == [1] and cache.rows("a", t, "k", 2**40) == [4]
    assert cache.rows("a", t, "k", 7) == [] and cache.rows("a", t, "k", 2**70) is None
    assert cache.rows("a", t, "s", 4) == [3] and cache.rows("a", t, "s", 40000) is None
    assert set(cache._index["a"]) == {"k", "s"}
    with_null = pa.table({"k": pa.array([1, None, 1], pa.int32())})
    t2 = cache.load("b", _file(tmp_path, "b.parquet", with_null))
    assert t2 is not None and cache.rows("b", t2, "k", 1) == [0, 2]
    assert "b" not in cache._index  # a NULL in the column: compared, not indexed
    text = pa.table({"k": pa.array(["x", "é", "x"])})
    t3 = cache.load("c", _file(tmp_path, "c.parquet", text))
    assert t3 is not None
    assert cache.rows("c", t3, "k", "x") == [0, 2] and cache.rows("c", t3, "k", "y") == []
    assert cache.rows("c", t3, "k", 3) is None


def test_the_budget_counts_tables_and_indexes(tmp_path: Path) -> None:
    rows = pa.table({"k": pa.array(range(1000), pa.int64()), "v": pa.array(range(1000))})
    paths = [_file(tmp_path, f"{i}.parquet", rows) for i in range(6)]
    probe = PointCache(1 << 30).load("p", paths[0])
    assert probe is not None
    each = probe.nbytes + 16 * 1000  # a file read back, and its key's index
    budget = 4 * each + 100
    cache = PointCache(budget)
    for i, path in enumerate(paths):
        t = cache.load(str(i), path)
        assert t is not None and cache.rows(str(i), t, "k", 999) == [999]
        assert cache.held_bytes <= budget
    assert list(cache._tables) == ["2", "3", "4", "5"]  # the least recently used went
    assert set(cache._index) == {"2", "3", "4", "5"}
    assert cache.held_bytes == 4 * each
    small = PointCache(rows.nbytes)  # a file over a quarter of the cache is not kept
    assert not small.wanted("x", 10 * rows.nbytes)
    assert small.load("x", paths[0]) is None and not small.wanted("x", 1)
