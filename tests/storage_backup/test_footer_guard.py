"""A Parquet footer from a target is checked before pyarrow reads it
(storage/backup/footer_guard.py). pyarrow ends the process on some malformed
footers: a RESTORE of a 2 KB crafted object aborted the whole server. And a
bloom filter or page index, which Cairn never writes, let DuckDB skip rows.
Each case is refused; Cairn's own files pass."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from bench.manifests import column, table_entry
from storage.backup import contents, footer_guard
from storage.backup.schema import TableEntry
from storage.files import data_file_bytes
from tests.parquet_footer import chunk_meta, edit, get, put


def _file() -> bytes:
    n = 5
    rows = pa.table({"_seq": pa.array(np.arange(1, n + 1), pa.int64()),
                     "_ow": pa.array(np.zeros(n, bool)),
                     "k": pa.array([f"key{i}" for i in range(n)]),
                     "v": pa.array(np.arange(n), pa.int32()),
                     "_updated": pa.array(np.zeros(n, np.int64), pa.timestamp("us")),
                     "_deleted": pa.array(np.zeros(n, bool))})
    return data_file_bytes(rows, {})[0]  # as Cairn writes its files


def _entry(size: int) -> TableEntry:
    entry = table_entry("t", [{"oid": "0" * 64, "size": size, "rows": 5,
                               "min_seq": 1, "max_seq": 5}],
                        [[column("k", "TEXT", key=True), column("v", "INT")]])
    return msgspec.convert(entry, TableEntry)


def _footer(data: bytes) -> bytes:
    n = int.from_bytes(data[-8:-4], "little")
    return data[-8 - n:-8]


def short_seq_statistics(meta: list[Any]) -> None:
    stats = get(chunk_meta(meta, 0, 0), 12)  # _seq, INT64
    put(stats, 2, 8, b"\x01\x02\x03")
    put(stats, 6, 8, b"\x01\x02\x03")


def boolean_two(meta: list[Any]) -> None:
    stats = get(chunk_meta(meta, 0, 1), 12)  # _ow, BOOLEAN: all false
    put(stats, 2, 8, b"\x02")  # min: false to pyarrow (bit 0), true to DuckDB
    put(stats, 6, 8, b"\x02")  # min_value


def other_type(meta: list[Any]) -> None:
    put(chunk_meta(meta, 0, 2), 1, 5, 0)  # the TEXT key's chunk says BOOLEAN


def long_histogram(meta: list[Any]) -> None:
    sizes = get(chunk_meta(meta, 0, 0), 16)
    put(sizes, 3, 9, (6, [0, 2, 0, 0]))


def bloom_filter(meta: list[Any]) -> None:
    put(chunk_meta(meta, 0, 2), 14, 6, 4)
    put(chunk_meta(meta, 0, 2), 15, 5, 32)


def page_index(meta: list[Any]) -> None:
    chunk = get(get(meta, 4)[1][0], 1)[1][2]
    put(chunk, 6, 6, 4)
    put(chunk, 7, 5, 32)


def no_path(meta: list[Any]) -> None:
    put(chunk_meta(meta, 0, 3), 3, 9, (8, []))  # path_in_schema (found by a footer fuzzer)


def unknown_encoding(meta: list[Any]) -> None:
    put(chunk_meta(meta, 0, 2), 2, 9, (5, [0, 3, 42]))


def unknown_codec(meta: list[Any]) -> None:
    put(chunk_meta(meta, 0, 2), 4, 5, 99)


def nested(meta: list[Any]) -> None:
    leaf = get(meta, 2)[1][3]
    put(leaf, 5, 5, 1)


CASES: dict[str, tuple[Callable[[list[Any]], None], str]] = {
    "short statistics": (short_seq_statistics, "not 8 bytes"),
    "boolean statistics of 2": (boolean_two, "not a BOOLEAN's 0 or 1"),
    "chunk of another type": (other_type, "as type 0, its schema as 6"),
    "histogram of the wrong length": (long_histogram, "level histograms"),
    "bloom filter": (bloom_filter, "bloom filter"),
    "page index": (page_index, "page index"),
    "nested schema": (nested, "nested schema"),
    "chunk without a path": (no_path, "otherwise in its chunk"),
    "unknown encoding": (unknown_encoding, "Parquet has not"),
    "unknown codec": (unknown_codec, "Parquet has not"),
}


def test_cairns_own_file_passes() -> None:
    data = _file()
    footer_guard.check(_footer(data))
    t = _entry(len(data))
    assert contents.problem(data[-(1 << 20):], t.files[0], t) is None


@pytest.mark.parametrize("case", CASES)
def test_a_footer_cairn_does_not_write_is_refused(case: str) -> None:
    change, words = CASES[case]
    data = edit(_file(), change)
    with pytest.raises(footer_guard.Malformed, match=words):
        footer_guard.check(_footer(data))
    t = _entry(len(data))
    wrong = contents.problem(data[-(1 << 20):], t.files[0], t)
    assert wrong is not None and "its Parquet footer" in wrong and words in wrong, wrong


@pytest.mark.parametrize("case", ["short statistics", "chunk of another type",
                                  "histogram of the wrong length", "chunk without a path"])
def test_no_footer_ends_the_process(case: str, tmp_path: Path) -> None:
    """What aborted the server: checked in a child process, which must live
    to say the file is damaged (before the guard: SIGABRT, exit -6)."""
    path = tmp_path / "f.parquet"
    path.write_bytes(edit(_file(), CASES[case][0]))
    code = (
        "import sys\n"
        "from storage.backup import contents\n"
        "from tests.storage_backup.test_footer_guard import _entry\n"
        f"data = open({str(path)!r}, 'rb').read()\n"
        "t = _entry(len(data))\n"
        "print(contents.problem(data, t.files[0], t))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-500:]
    assert "its Parquet footer" in done.stdout


def test_truncated_and_garbage_footers_are_refused() -> None:
    footer = _footer(_file())
    for bad in (footer[: len(footer) // 2], b"\xff" * 64, b"\x19\xfc" * 100, b""):
        with pytest.raises(footer_guard.Malformed):
            footer_guard.check(bad)


def test_key_statistics_that_are_no_utf8_are_damage_not_an_error() -> None:
    """A TEXT key's statistics of bytes that are no UTF-8: comparing them
    raised UnicodeDecodeError, a 500 for VERIFY and RESTORE."""
    n = 3
    rows = pa.table({"_seq": pa.array(np.arange(1, n + 1), pa.int64()),
                     "_ow": pa.array(np.zeros(n, bool)),
                     "k": pa.array([b"\xff\xfe"] * n, pa.binary()).view(pa.string()),
                     "v": pa.array(np.arange(n), pa.int32()),
                     "_updated": pa.array(np.zeros(n, np.int64), pa.timestamp("us")),
                     "_deleted": pa.array(np.zeros(n, bool))})
    data = data_file_bytes(rows, {})[0]
    entry = table_entry("t", [{"oid": "0" * 64, "size": len(data), "rows": n, "min_seq": 1,
                               "max_seq": n, "key_range": {"k": ["a", "z"]}}],
                        [[column("k", "TEXT", key=True), column("v", "INT")]])
    t = msgspec.convert(entry, TableEntry)
    wrong = contents.problem(data, t.files[0], t)
    assert wrong is not None and "do not decode" in wrong, wrong
