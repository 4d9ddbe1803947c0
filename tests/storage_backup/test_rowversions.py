"""rowversions.Versions across batches (a file larger than one batch)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from storage.backup.rowversions import Versions


def _batch(seqs: list[int], ids: list[int], ow: list[bool]) -> pa.RecordBatch:
    return pa.record_batch({"_seq": pa.array(seqs, pa.int64()), "_ow": pa.array(ow),
                            "id": pa.array(ids, pa.int64())})


def test_a_repeat_in_another_batch_is_found_at_the_end() -> None:
    v = Versions(["id"])
    assert v.add(_batch([1, 2], [1, 2], [False, False])) is None
    assert v.add(_batch([3, 4], [1, 3], [True, False])) is None
    assert v.done() is None
    v = Versions(["id"])
    assert v.add(_batch([1, 2], [1, 2], [False, False])) is None
    assert v.add(_batch([3, 4], [2, 3], [False, False])) is None
    assert "2 first versions (_ow false) of one key (id = 2)" in str(v.done())
    v = Versions(["id"])
    assert v.add(_batch([1, 2], [1, 2], [False, False])) is None
    assert v.add(_batch([3, 2], [1, 1], [True, True])) is None
    assert "two rows of one row version (_seq 2)" in str(v.done())


def test_a_long_key_is_shown_cut() -> None:
    v = Versions(["k"])
    batch = pa.record_batch({"_seq": pa.array([1, 2], pa.int64()), "_ow": pa.array([False] * 2),
                             "k": pa.array(["x" * 10_000] * 2)})
    wrong = str(v.add(batch))
    assert "first versions" in wrong and len(wrong) < 300


def test_batches_out_of_order_are_sorted_together() -> None:
    v = Versions(["id"])
    assert v.add(_batch([5, 6], [1, 2], [False, False])) is None
    assert v.add(_batch([7, 8], [3, 4], [False, False])) is None
    assert v.add(_batch([1, 6], [5, 6], [False, False])) is None
    assert "(_seq 6)" in str(v.done())


def _texts(seqs: list[int], keys: list[str], ow: list[bool]) -> pa.RecordBatch:
    return pa.record_batch({"_seq": pa.array(seqs, pa.int64()), "_ow": pa.array(ow),
                            "k": pa.array(keys), "n": pa.array([7] * len(keys), pa.int64())})


def test_text_and_composite_keys_by_their_hashes_then_exactly() -> None:
    for keys in (["k"], ["k", "n"]):
        v = Versions(keys)
        first = _texts([1, 2], ["a", "b"], [False, False])
        second = _texts([3, 4], ["c", "a"], [False, False])
        assert v.add(first) is None and v.add(second) is None
        assert v.done() is None and v.suspects  # a repeated hash, told exactly next
        assert "2 first versions (_ow false) of one key (k = 'a'" in str(
            v.confirm([first, second]))
        v = Versions(keys)
        assert v.add(_texts([1, 2], ["a", "b"], [False, False])) is None
        assert v.add(_texts([3, 4], ["a", "c"], [True, False])) is None
        assert v.done() is None and not v.suspects
    v = Versions(["k"])
    assert "2 first versions" in str(v.add(_texts([1, 2], ["a", "a"], [False, False])))


def test_a_repeat_across_batches_names_the_sources_holding_it() -> None:
    """The archive's replay names the segments a repeat is in (found_in)."""
    v = Versions(["id"])
    assert v.add(_batch([1, 2], [1, 2], [False, False]), "a") is None
    assert v.add(_batch([3, 4], [3, 4], [False, False]), "b") is None
    assert v.add(_batch([5, 6], [2, 5], [False, False]), "c") is None
    assert "(id = 2)" in str(v.done()) and v.found_in == ["a", "c"]
    v = Versions(["id"])
    assert v.add(_batch([5, 6], [1, 2], [False, False]), "a") is None
    assert v.add(_batch([7, 8], [3, 4], [False, False]), "b") is None
    assert v.add(_batch([8, 9], [5, 6], [False, False]), "b") is None
    assert "(_seq 8)" in str(v.done()) and v.found_in == ["b"]
    v = Versions(["k"])
    assert v.add(_texts([1, 2], ["a", "b"], [False, False]), "a") is None
    assert v.add(_texts([3], ["c"], [False]), "b") is None
    assert v.add(_texts([4], ["b"], [False]), "c") is None
    assert v.done() is None and v.found_in == ["a", "c"]


def test_two_first_versions_of_key_nan_are_one_key_whatever_its_sign() -> None:
    """An older Cairn stored NaN keys (VERIFY takes one): as DuckDB compares
    keys, every NaN is one key, and Arrow's grouping told NaN from -NaN."""
    nan = float("nan")
    for pair in ([nan, nan], [nan, -nan]):
        v = Versions(["k"])
        batch = pa.record_batch({"_seq": pa.array([1, 2, 3], pa.int64()),
                                 "_ow": pa.array([False] * 3), "k": pa.array([1.5, *pair])})
        assert "2 first versions (_ow false) of one key (k = nan)" in str(v.add(batch)), pair
    v = Versions(["k"])
    one = pa.record_batch({"_seq": pa.array([1, 2], pa.int64()), "_ow": pa.array([False, True]),
                           "k": pa.array([nan, -nan])})
    assert v.add(one) is None and v.done() is None


def test_files_of_text_keys_share_one_duckdb(monkeypatch: pytest.MonkeyPatch) -> None:
    """VERIFY and RESTORE check every file with a Versions of its own: one
    DuckDB opened and closed for each (60-85 ms) made 1,000 one-row files of
    a USER table take 115 s to VERIFY. The process's one database serves them
    all, a cursor a file, and still finds a repeated key."""
    import duckdb

    opened: list[object] = []
    real = duckdb.connect

    def counted(*args: object, **kwargs: object) -> duckdb.DuckDBPyConnection:
        opened.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(duckdb, "connect", counted)
    for i in range(20):
        v = Versions(["u", "k"])
        batch = pa.record_batch({"_seq": pa.array([2 * i + 1, 2 * i + 2], pa.int64()),
                                 "_ow": pa.array([False, False]),
                                 "u": pa.array([f"user{i}", f"user{i}"]),
                                 "k": pa.array([1, 2], pa.int32())})
        assert v.add(batch) is None and v.done() is None
        v.close()
    assert len(opened) <= 1, f"{len(opened)} DuckDB databases opened for 20 files"
    v = Versions(["u", "k"])
    twice = pa.record_batch({"_seq": pa.array([1, 2], pa.int64()), "_ow": pa.array([False, False]),
                             "u": pa.array(["a", "a"]), "k": pa.array([7, 7], pa.int32())})
    assert "of one key" in str(v.add(twice))
    v.close()


def _not_utf8_keys() -> pa.RecordBatch:
    """Keys 'a', b'b\\xff', 'c': a file's reader takes them unchecked, and its
    statistics (a..c) decode."""
    import numpy as np

    data = [b"a", b"b\xff", b"c"]
    offsets = np.cumsum([0] + [len(d) for d in data]).astype(np.int32)
    keys = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets.tobytes()),
                                                  pa.py_buffer(b"".join(data))])
    return pa.record_batch({"_seq": pa.array([1, 2, 3], pa.int64()),
                            "_ow": pa.array([False] * 3), "k": keys})


def _a_good_file_is_checked(name: str) -> None:
    v = Versions([name])
    good = pa.record_batch({"_seq": pa.array([1, 2], pa.int64()), "_ow": pa.array([False] * 2),
                            name: pa.array(["x", "y"])})
    assert v.add(good) is None and v.done() is None
    v.close()
    v = Versions([name])
    twice = pa.record_batch({"_seq": pa.array([1, 2], pa.int64()), "_ow": pa.array([False] * 2),
                             name: pa.array(["x", "x"])})
    assert "of one key" in str(v.add(twice))
    v.close()


def test_a_text_key_that_is_no_utf8_is_damage_and_harms_no_later_file() -> None:
    """A file of a TEXT key whose bytes are no UTF-8 (its statistics valid)
    made DuckDB's `reverse` fail so that it invalidated the process's one
    database: every later file's check in that process (VERIFY, RESTORE, a
    replay) failed, good backups called invalid. Now such keys are damage of
    that file, said so, and DuckDB never sees them."""
    v = Versions(["k"])
    assert "not UTF-8" in str(v.add(_not_utf8_keys()))
    v.close()
    _a_good_file_is_checked("k")


def test_a_duckdb_that_failed_for_good_is_not_used_again() -> None:
    """Whatever makes DuckDB invalidate its database (here the same keys,
    straight to the hashing) costs that file only: the next file's check
    has a database of its own."""
    v = Versions(["k"])
    firsts = _not_utf8_keys().select(["k"])
    with pytest.raises(Exception, match="reverse"):
        v._hashes(firsts)
    v.close()
    _a_good_file_is_checked("k")
