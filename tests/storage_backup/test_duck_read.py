"""storage/backup/duck_read.py: DuckDB, the reader of every query, reads each
file of a backup whole before VERIFY calls it valid or RESTORE installs it
(tests/e2e/test_backup_parquet_types.py has the crafted files end to end)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.diskerrors import DataDirUnavailable
from storage.backup import duck_read
from storage.files import data_file_bytes
from tests.helpers import no_descriptor_left


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "v": ["a", "b", None]}), path)
    return path


def test_a_file_is_read_from_a_path_a_descriptor_or_memory(tmp_path: Path) -> None:
    path = _file(tmp_path)
    assert duck_read.problem(str(path), ["id", "v"], 3) is None
    with open(path, "rb") as f:
        assert duck_read.problem(f, ["id", "v"], 3) is None
    assert duck_read.problem(io.BytesIO(path.read_bytes()), ["id", "v"], 3) is None
    wrong = duck_read.problem(str(path), ["id", "v"], 4)
    assert wrong == "holds 3 rows to DuckDB, its entry says 4"


def test_a_file_duckdb_refuses_is_named_without_its_path(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    path.write_bytes(_file(tmp_path).read_bytes()[:-20] + b"PAR1")
    wrong = duck_read.problem(str(path), ["id", "v"], 3)
    assert wrong is not None and wrong.startswith("cannot be read by DuckDB")
    assert str(tmp_path) not in wrong


def test_a_server_out_of_descriptors_is_unavailable_not_a_damaged_file(tmp_path: Path) -> None:
    path = _file(tmp_path)
    assert duck_read.problem(str(path), ["id", "v"], 3) is None  # the process's database made
    with no_descriptor_left(), pytest.raises(DataDirUnavailable) as caught:
        duck_read.problem(str(path), ["id", "v"], 3)
    assert "open-files limit" in str(caught.value)


def test_values_are_compared_whatever_the_columns_are_named(tmp_path: Path) -> None:
    """A column named as DuckDB's virtual row number or as the comparison's
    own row number is compared as any other; NaN is NaN, -0.0 is -0.0."""
    path = tmp_path / "names.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "file_row_number": ["a", "b", None],
                             "cairn_row": [float("nan"), -0.0, None], 'we"ird': [b"", None, b"x"]}),
                   path, row_group_size=2)
    names = ["id", "file_row_number", "cairn_row", 'we"ird']
    assert duck_read.problem(str(path), names, 3) is None
    one_row = duck_read.Side(plain=("file_row_number",), batch_rows=(1, 1))
    assert duck_read.problem(str(path), names, 3, one_row) is None
    assert duck_read.problem(str(path), names, 2) == "holds 3 rows to DuckDB, its entry says 2"



def test_a_duckdb_invalidated_for_good_is_not_the_next_files(tmp_path: Path) -> None:
    """Whatever makes DuckDB invalidate the process's one database (here an
    INTERNAL error of `reverse` of bytes that are no UTF-8, on a cursor of it)
    costs no later file: before, every later file of the process (the long-lived
    job process) was "cannot be read by DuckDB" (FATAL: database invalidated),
    a good backup called invalid until a restart."""
    import duckdb

    raw = pa.array([b"b\xff\xfe"], pa.binary())
    text = pa.Array.from_buffers(pa.string(), 1, raw.buffers())
    with duck_read._cursor() as con:
        con.register("bad", pa.table({"v": text}))
        with pytest.raises((duckdb.InternalException, duckdb.FatalException)):
            con.execute("SELECT reverse(v) FROM bad").fetchall()
    path = _file(tmp_path)
    assert duck_read.problem(str(path), ["id", "v"], 3) is None
    assert duck_read.problem(str(path), ["id", "v"], 3) is None


def test_a_wide_files_comparison_builds_its_schema_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow's side built its stream's schema with `schema_arrow.field(n)`
    for each column, and `schema_arrow` is built anew at each access: a file
    of N columns cost N schemas of N fields (a table of the most columns,
    4,094: 11 s a file, and its backup's test ran past 120 s in CI). Now once
    a stream."""
    from storage.backup import check_reader

    built = 0
    real = check_reader.CheckReader.schema_arrow

    def counted(self: check_reader.CheckReader) -> pa.Schema:
        nonlocal built
        built += 1
        return real.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(check_reader.CheckReader, "schema_arrow", property(counted))
    path = tmp_path / "wide.parquet"
    names = [f"c{i}" for i in range(500)]
    pq.write_table(pa.table({n: pa.array([n]) for n in names}), path)
    assert duck_read.problem(str(path), names, 1) is None
    assert built <= 2, built  # a stream's, not a column's (500 before)


@pytest.mark.parametrize("column", ["x", "f"])
def test_a_zero_read_with_another_sign_is_a_difference(tmp_path: Path, column: str) -> None:
    """Two readers starting a chunk at different pages (the craft of
    test_backup_parquet_types.py, footer_guard's rule not asked here): pyarrow
    reads 0.0, -0.0, DuckDB -0.0, 0.0. `IS DISTINCT FROM` calls them equal,
    yet a query shows `-0.0` (and 1 / x is -inf): compared by sign too."""
    from tests.e2e.test_backup_parquet_types import _rows_twice_read_from_the_second_page

    kind = pa.float64() if column == "x" else pa.float32()
    path = tmp_path / "zeros.parquet"
    out = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2], column: pa.array([0.0, -0.0], kind)}), out)
    path.write_bytes(_rows_twice_read_from_the_second_page(column)(out.getvalue()))
    assert pq.read_table(path).column(column).to_pylist() == [0.0, -0.0]  # pyarrow's (the checks')
    wrong = duck_read.problem(str(path), ["id", column], 2)
    assert wrong is not None and f"disagree on column '{column}' at row 0 " in wrong, wrong
    assert "(DuckDB: '-0.0'; pyarrow: '0.0')" in wrong, wrong


def test_the_streams_types_are_described_once_a_schema(tmp_path: Path) -> None:
    """DuckDB's types of pyarrow's stream are a function of its Arrow schema:
    described once for the files of one schema, anew for another (a column of
    the same name and another type is no disagreement of the two readers)."""
    duck_read._arrow_typed.clear()
    for n in range(3):
        path = tmp_path / f"s{n}.parquet"
        pq.write_table(pa.table({"id": [n, n + 1], "v": ["a", None]}), path)
        assert duck_read.problem(str(path), ["id", "v"], 2) is None
    assert len(duck_read._arrow_typed) == 1
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": [1, 2], "v": pa.array([7, None], pa.int64())}), other)
    assert duck_read.problem(str(other), ["id", "v"], 2) is None
    assert len(duck_read._arrow_typed) == 2
    types = list(duck_read._arrow_typed.values())
    assert {t["v"] for t in types} == {"VARCHAR", "BIGINT"}, types


@pytest.mark.parametrize("column", ["w", "b"])
def test_a_wide_text_read_otherwise_is_a_difference(tmp_path: Path, column: str) -> None:
    """A TEXT (or BYTES) column of 16 KiB a row or more is compared by its
    values' SHA-256, pyarrow's read first and DuckDB's after (not both at
    once: the memory test below): a chunk the two readers start at different
    pages (the craft of test_backup_parquet_types.py) still differs, named."""
    from tests.e2e.test_backup_parquet_types import _rows_twice_read_from_the_second_page

    values = [c * (20 << 10) for c in "xyz"]
    kind = pa.string() if column == "w" else pa.binary()
    out = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], column: pa.array(
        values if column == "w" else [v.encode() for v in values], kind)}), out)
    path = tmp_path / "wide.parquet"
    path.write_bytes(_rows_twice_read_from_the_second_page(column)(out.getvalue()))
    assert duck_read._wide(str(path), ["id", column], {"id": "BIGINT", column: (
        "VARCHAR" if column == "w" else "BLOB")}, duck_read.Side()) == [column]
    wrong = duck_read.problem(str(path), ["id", column], 3)
    assert wrong is not None and f"disagree on column '{column}' at row 0 " in wrong, wrong


# The peak RSS of this process's memory (VmHWM: getrusage's ru_maxrss keeps
# the parent's across exec, the test's own hundreds of MB).
MEASURED = """
import sys
from storage.backup import duck_read, text_batches
def peak():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) << 10
path = sys.argv[1]
plain, rows, meta = text_batches.plain_text(path, ["v"])
side = duck_read.Side(tuple({"v"} - plain), tuple(sorted(plain)), tuple(rows), meta)
with duck_read._cursor():
    pass
base = peak()
assert duck_read.problem(path, ["_seq", "_ow", "k", "v"], 1024, side) is None
print(peak() - base)
"""


def test_a_wide_text_is_not_held_by_both_readers_at_once(tmp_path: Path) -> None:
    """Cairn keeps 1,024 rows a row group at least: 1,024 rows of 32 KiB texts
    are a 32 MiB row group. Both readers reading it at once, the comparison
    took +244 MB (64 KiB texts: +461 MB; 1 MiB texts: 6.6 GB, DuckDB's read
    alone 1.1 GB); a reader at a time, +169 MB (+313 MB; 4.95 GB). Measured
    in a process of its own."""
    n, size = 1024, 32 << 10
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
    text = letters[np.random.default_rng(1).integers(0, 36, n * size)].tobytes()
    offsets = pa.array(np.arange(0, n * size + 1, size, dtype=np.int32))
    rows = pa.table({"_seq": pa.array(range(1, n + 1), pa.int64()),
                     "_ow": pa.array([False] * n), "k": pa.array(range(n), pa.int64()),
                     "v": pa.StringArray.from_buffers(n, offsets.buffers()[1],
                                                      pa.py_buffer(text))})
    path = tmp_path / "wide.parquet"
    path.write_bytes(data_file_bytes(rows, {})[0])  # as Cairn writes it
    done = subprocess.run([sys.executable, "-c", MEASURED, str(path)], capture_output=True,
                          text=True, timeout=300, cwd=str(Path(__file__).parents[2]))
    assert done.returncode == 0, done.stderr
    grew = int(done.stdout.split()[-1])
    assert grew < 6.5 * (32 << 20), grew  # the row group's texts 6.5 times over, at most


def test_a_stream_pyarrow_cannot_allocate_for_is_a_shortage_not_damage() -> None:
    """DuckDB scans what pyarrow reads of the file (duck_read._stream): an
    allocation pyarrow is refused there (ArrowMemoryError, "malloc of size …
    failed": here one no machine grants) came out of DuckDB as "reading the
    stream registered as … failed: Out of memory …", which the check took
    for damage: "cannot be read by DuckDB" (a RESTORE short of memory
    refused a sound backup BACKUP_INVALID)."""
    import duckdb

    schema = pa.schema([("a", pa.int64())])

    def batches() -> Any:
        yield pa.RecordBatch.from_arrays([pa.array([1, 2])], schema=schema)
        pa.allocate_buffer(1 << 62)  # refused: ArrowMemoryError

    con = duckdb.connect()
    con.register("s", pa.RecordBatchReader.from_batches(schema, batches()))
    with pytest.raises(duckdb.Error) as caught:
        con.execute("SELECT count(*) FROM s").fetchall()
    short = duck_read.stream_shortage(caught.value)
    assert isinstance(short, DataDirUnavailable) and short.sqlstate == "53200", caught.value
    assert "out of memory" in short.message and "DuckDB" in short.message, short.message
    # Any other failure of the stream is no shortage.
    def broken() -> Any:
        yield pa.RecordBatch.from_arrays([pa.array([1, 2])], schema=schema)
        raise pa.ArrowInvalid("Couldn't deserialize thrift: TProtocolException")

    con.register("b", pa.RecordBatchReader.from_batches(schema, broken()))
    with pytest.raises(duckdb.Error) as caught:
        con.execute("SELECT count(*) FROM b").fetchall()
    assert duck_read.stream_shortage(caught.value) is None, caught.value
