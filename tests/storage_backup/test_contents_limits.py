"""contents.values_problem on files a hostile target may hold: key text that
decodes to far more than the file (a dictionary holds a long key once, every
row refers to it), refused from the dictionary's lengths before it is decoded;
Cairn's own files of long and many keys pass."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.manifests import column, table_entry
from storage.backup import check_reader, contents
from storage.backup.schema import TableEntry
from storage.files import row_group_rows


def _check(table: pa.Table, tmp_path: Path) -> str | None:
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_rows(table),
                   store_schema=False)  # a dictionary is read back as the plain type
    n = table.num_rows
    entry = table_entry("t", [{"oid": "0" * 64, "size": path.stat().st_size, "rows": n,
                               "min_seq": 1, "max_seq": n}],
                        [[column("k", "TEXT", key=True), column("v", "INT")]])
    t = msgspec.convert(entry, TableEntry)
    f = t.files[0]
    assert contents.problem(contents.tail_of(str(path)), f, t) is None
    wrong = contents.values_problem(str(path), f, t)
    assert wrong == contents.values_problem(io.BytesIO(path.read_bytes()), f, t)
    return wrong


def _rows(keys: Any, ow: Any) -> pa.Table:
    n = len(keys)
    return pa.table({"_seq": pa.array(np.arange(1, n + 1), pa.int64()), "_ow": pa.array(ow),
                     "k": keys, "v": pa.array(np.zeros(n, np.int32)),
                     "_updated": pa.array(np.zeros(n, np.int64), pa.timestamp("us")),
                     "_deleted": pa.array(np.zeros(n, bool))})


def test_one_long_key_in_every_row_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    n = 300  # 300 MiB of key text in a file of some 3 KB
    keys = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                          pa.array(["k" * (1 << 20)]))
    rows = _rows(keys, [False] + [True] * (n - 1))
    wrong = _check(rows, tmp_path)
    assert wrong is not None and "more key text than 64 times its size" in wrong, wrong


def test_cairns_own_long_and_many_keys_pass(tmp_path: Path) -> None:
    n = 200_000
    keys = pa.array([f"customer-{i:09d}@example.com/orders/{i % 97}" for i in range(n)])
    assert _check(_rows(keys, np.zeros(n, bool)), tmp_path) is None
    # a long key updated a few times: 8 versions of a 1 MiB key
    keys = pa.array(["k" * (1 << 20)] * 8)
    assert _check(_rows(keys, [False] + [True] * 7), tmp_path) is None
    # one key twice as a first version, among many text keys: found exactly
    keys = pa.array([f"user-{i}" for i in range(n)] + ["user-17"])
    wrong = _check(_rows(keys, np.zeros(n + 1, bool)), tmp_path)
    assert wrong is not None and "2 first versions (_ow false) of one key (k = 'user-17')" in wrong


def test_a_text_column_is_read_plain_only_when_its_dictionary_bounds_its_values(
        tmp_path: Path) -> None:
    """Read as a dictionary, a column of 1,000-byte values took ~100 MB to
    check; plain in small batches ~35 MB (a restore's peak RSS went past its
    300 MB aim). Plain is safe only as far as a chunk's dictionary page bounds
    its values: the batch rows are sized by it, whatever the footer says of
    the page (past PLAIN_DICTIONARY a few rows or one a batch: a 1 GiB
    dictionary read as one took pyarrow 4.9 GB, plain 2.9 GB), and a row
    group of more than MAX_BATCHES such batches stays a dictionary."""
    import os

    from tests.parquet_footer import chunk_meta, edit, get, put

    n = 2_000
    small = pa.table({"t": pa.array([os.urandom(500).hex() for _ in range(n)])})
    big = pa.table({"t": pa.array(["x" * (5 << 20)] * 3)})  # one 5 MiB value, a dictionary
    paths = {}
    for name, table in (("small", small), ("big", big)):
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(table, paths[name], compression="zstd")
    plain, rows, _ = contents._plain_text(str(paths["small"]), ["t"])
    assert plain == {"t"} and rows and all(32 <= r <= contents.BATCH_ROWS for r in rows)
    assert contents._plain_text(str(paths["big"]), ["t"])[:2] == ({"t"}, [25])  # 128 / 5 MiB

    def hide_the_dictionary(meta: list[Any]) -> None:  # the footer says there is none
        cm = chunk_meta(meta, 0, 0)
        first = get(cm, 11)
        cm[:] = [f for f in cm if f[0] != 11]
        put(cm, 9, 6, first)

    lying = tmp_path / "lying.parquet"
    lying.write_bytes(edit(paths["big"].read_bytes(), hide_the_dictionary))
    assert pq.read_metadata(lying).row_group(0).column(0).dictionary_page_offset is None
    assert contents._plain_text(str(lying), ["t"])[:2] == ({"t"}, [25])  # by its page header
    many = tmp_path / "many.parquet"  # 25-row batches: 4,096 of them 102,400 rows
    one = pa.DictionaryArray.from_arrays(pa.array(np.zeros(102_401, np.int32)), ["x" * (5 << 20)])
    pq.write_table(pa.table({"t": one}), many, compression="zstd", row_group_size=1 << 20)
    assert contents._plain_text(str(many), ["t"])[0] == set()


def test_a_plain_columns_check_churns_no_more_than_its_file_through_the_default_pool(
        tmp_path: Path) -> None:
    """Read plain in small batches, a BYTES column of 1,000-byte values made
    the reader reserve the rest of its data page for every batch: ~14 times
    the file allocated and freed through pyarrow's default pool (mimalloc),
    which held the freed pages for a while, and a restore's peak RSS rose
    +28-35 MB checking each file. The check's arrays come from a pool of
    their own (backup/check_reader.py): the default pool sees the pages'
    buffers only, and neither pool keeps anything once the file is checked."""
    import os

    n = 6_000
    payload = pa.array([os.urandom(1000) for _ in range(n)], pa.binary())
    rows = pa.table({"_seq": pa.array(np.arange(1, n + 1), pa.int64()),
                     "_ow": pa.array(np.zeros(n, bool)),
                     "id": pa.array(np.arange(n), pa.int64()), "p": payload,
                     "_updated": pa.array(np.zeros(n, np.int64), pa.timestamp("us")),
                     "_deleted": pa.array(np.zeros(n, bool))})
    path = tmp_path / "f.parquet"
    pq.write_table(rows, path, compression="zstd", row_group_size=row_group_rows(rows),
                   store_schema=False)
    size = path.stat().st_size
    entry = table_entry("t", [{"oid": "0" * 64, "size": size, "rows": n, "min_seq": 1,
                               "max_seq": n}],
                        [[column("id", key=True), column("p", "BYTES")]])
    t = msgspec.convert(entry, TableEntry)
    f = t.files[0]
    assert contents._plain_text(str(path), ["p"])[0] == {"p"}  # read plain, in small batches
    pools = {id(p): p for p in (pa.default_memory_pool(), check_reader.pool())}.values()
    live = [p.bytes_allocated() for p in pools]
    default = pa.default_memory_pool()
    before = default.total_bytes_allocated()
    assert contents.values_problem(str(path), f, t) is None
    churned = default.total_bytes_allocated() - before
    # ~1.5 times the file for each of the three reads (the checks', each
    # page's statistics against its values when a chunk has several pages:
    # page_stats.py, then the one DuckDB's values are compared with: duck_read.py)
    assert churned < 6 * size, (churned, size)
    assert [p.bytes_allocated() for p in pools] == live  # nothing held after the check


def test_plain_pages_bound_a_batch_as_a_dictionary_does(tmp_path: Path) -> None:
    """A chunk with no dictionary page was read 65,536 rows a batch: 600 rows
    of one 1 MiB value stored PLAIN and compressed (a 33 KB file) took the
    job process checking it to 1.4 GB, 6,000 rows past 10 GB. A batch's
    rows are now sized by what the pages' headers bound them to
    (backup/text_batches.py), and Cairn's own pages keep their large batches."""
    from storage.backup import text_batches

    n = 600
    value = b"a" * (1 << 20)
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"y": pa.array([value] * n, pa.binary())}), path,
                   compression="zstd", use_dictionary=False, data_page_size=1 << 30)
    assert path.stat().st_size < 64 << 10
    plain, rows, _ = contents._plain_text(str(path), ["y"])
    assert plain == {"y"} and rows
    assert max(rows) * len(value) <= text_batches.PLAIN_BATCH, rows
    # as Cairn writes it (a dictionary page first): the same bound as before
    pq.write_table(pa.table({"y": pa.array([value] * n, pa.binary())}), path, compression="zstd")
    plain, rows, _ = contents._plain_text(str(path), ["y"])
    assert plain == {"y"} and max(rows) * len(value) <= text_batches.PLAIN_BATCH
    # many small values, plain: batches as large as ever
    small = pa.table({"t": pa.array([f"value-{i}" for i in range(200_000)])})
    pq.write_table(small, path, compression="zstd", use_dictionary=False)
    plain, rows, _ = contents._plain_text(str(path), ["t"])
    assert plain == {"t"} and rows == [contents.BATCH_ROWS], rows


def test_a_run_of_rows_is_bounded_across_pages() -> None:
    """What any run of rows may decode to, from the pages' bounds: one huge
    page among small ones, pages of one value each, an empty page."""
    from storage.backup.text_batches import PLAIN_BATCH, _largest_run, batch_rows

    mib = 1 << 20
    small = (20_000, mib, mib)  # 20,000 values in a 1 MiB PLAIN page
    assert batch_rows([small] * 50) == contents.BATCH_ROWS
    assert _largest_run([small] * 50, 65_536) == 5 * mib  # it and 4 pages after it
    one_each = [(1, 50 * mib, 50 * mib)] * 10
    assert batch_rows(one_each) == 2 and _largest_run(one_each, 2) == 100 * mib
    assert _largest_run(one_each, 4) == 200 * mib > PLAIN_BATCH
    assert batch_rows([], dictionary=mib) == 128  # each row at most a 1 MiB dictionary
    assert batch_rows([small] * 3, dictionary=mib) == 128  # and plain pages after it
    assert batch_rows(one_each, dictionary=mib) == 2
    assert _largest_run([], 8) == 0 and batch_rows([(0, 0, 0)]) == contents.BATCH_ROWS


def test_a_key_that_is_no_utf8_is_that_files_damage_not_the_next_files(tmp_path: Path) -> None:
    """A TEXT key of bytes that are no UTF-8 between valid statistics ('a' and
    'c'): pyarrow reads it unchecked and keys are checked by `outside`, so
    DuckDB's hash (`reverse`) met it, failed, and invalidated the process's one
    database (rowversions._cursor): every later file's check failed, a good
    backup called invalid (a long-lived job process, or the server)."""
    data = [b"a", b"b\xff", b"c"]
    offsets = np.cumsum([0] + [len(d) for d in data]).astype(np.int32)
    keys = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets.tobytes()),
                                                  pa.py_buffer(b"".join(data))])
    wrong = _check(_rows(keys, np.zeros(3, bool)), tmp_path)
    assert wrong is not None and "not UTF-8" in wrong, wrong
    assert _check(_rows(pa.array(["x", "y", "z"]), np.zeros(3, bool)), tmp_path) is None


# In a process of its own: its address space limited just past what it has,
# a sound file's 16 MiB value cannot be allocated (as under vm.overcommit_memory
# = 2, or ulimit -v, where the kernel refuses an allocation, not kills).
_SHORT_OF_MEMORY = """
import resource, sys
from pathlib import Path
import msgspec, numpy as np, pyarrow as pa, pyarrow.parquet as pq
from bench.manifests import column, table_entry
from storage.backup import contents
from storage.backup.schema import TableEntry
from storage.files import row_group_rows

def checked(path, n, width):
    t = pa.table({"_seq": pa.array(np.arange(1, n + 1), pa.int64()),
                  "_ow": pa.array(np.zeros(n, bool)), "k": pa.array(np.arange(n), pa.int64()),
                  "v": pa.array(["x" * width] * n),
                  "_updated": pa.array(np.zeros(n, np.int64), pa.timestamp("us")),
                  "_deleted": pa.array(np.zeros(n, bool))})
    pq.write_table(t, path, compression="zstd", row_group_size=row_group_rows(t),
                   store_schema=False)
    e = table_entry("t", [{"oid": "0" * 64, "size": path.stat().st_size, "rows": n,
                           "min_seq": 1, "max_seq": n}],
                    [[column("k", "BIGINT", key=True), column("v", "TEXT")]])
    t = msgspec.convert(e, TableEntry)
    return lambda: contents.values_problem(str(path), t.files[0], t)

small, big = checked(Path(sys.argv[1], "s"), 10, 100), checked(Path(sys.argv[1], "b"), 4, 16 << 20)
if sys.argv[2] == "big":
    print(small())  # the readers' threads and pools, before the limit
vsz = int(open("/proc/self/statm").read().split()[0]) * 4096
resource.setrlimit(resource.RLIMIT_AS, (vsz + (12 << 20), resource.RLIM_INFINITY))
try:
    print(big() if sys.argv[2] == "big" else small())
except Exception as exc:
    print(type(exc).__name__, getattr(exc, "code", ""), exc)
"""


def test_a_sound_file_the_readers_cannot_allocate_for_is_unavailable_not_damaged(
        tmp_path: Path) -> None:
    """pyarrow's ArrowMemoryError was damage, "cannot be read (ArrowMemoryError)":
    VERIFY invalid, RESTORE BACKUP_INVALID, for a sound file on a machine short
    of memory (DuckDB's own shortage was 503 already)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SHORT_OF_MEMORY, str(tmp_path), "big"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    small, big = out.stdout.splitlines()[-2:]
    assert small == "None", out.stdout
    assert big.startswith("DataDirUnavailable UNAVAILABLE") and "out of memory" in big, big
    # Short of memory before the check's DuckDB opened: its OutOfMemoryException
    # went out as it was (a 500 INTERNAL of the job).
    out = subprocess.run([sys.executable, "-c", _SHORT_OF_MEMORY, str(tmp_path), "small"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.splitlines()[-1]
    assert last.startswith("DataDirUnavailable UNAVAILABLE") and "out of memory" in last, last
