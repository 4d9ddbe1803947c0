"""A file from a target is read whole by DuckDB too, the reader of every query.

The checks of backup/contents.py decode every column with pyarrow. DuckDB
reads Parquet with a reader of its own, stricter in places: a page whose
header's uncompressed size was not its size in an uncompressed chunk (which
pyarrow ignores), a DELTA_BYTE_ARRAY page whose prefix and suffix counts
differ, a page header DuckDB's Thrift refuses. Such a file verified valid and
was restored, and then every SELECT of its table failed ("corrupted:
uncompressed page size mismatch", naming the server's data file). So after
pyarrow's checks found nothing, DuckDB reads every value of every column
(nothing answered from statistics, nothing skipped) and must count the
entry's rows; else the file is damaged for VERIFY and RESTORE alike.

And DuckDB's values must be pyarrow's, row by row: both readers read the
same bytes and each succeeded, yet took them otherwise (a chunk's start
told two ways, a v1 page's level encoding: each then refused by a rule of
its own, footer_guard.py, page_headers.py), so every query saw other rows
than VERIFY had checked. So DuckDB's read is a POSITIONAL JOIN of its
`read_parquet` with pyarrow's batches of the same file (read as the checks
read it, a row group's batches at a time, never the file's table whole:
Side), `IS DISTINCT FROM` column by column (NULL is NULL, NaN is NaN; a REAL
or DOUBLE's sign compared too: -0.0 is not 0.0); the first row and column
they differ on are named. A private
in-memory DuckDB of one thread (sandbox.scratch_config; rows in order),
one for the process, a cursor a file."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.diskerrors import read_shortage, shortage
from storage.sandbox import scratch_config

from . import check_reader
from .check_reader import CheckReader

# As nanreader.py's: no answer from the footer's statistics.
NOT_BY_STATISTICS = "statistics_propagation,filter_pushdown,expression_rewriter"


@dataclass(frozen=True)
class Side:
    """How pyarrow's side of the comparison is read, as contents.values_problem
    reads the file (memory bounded alike): text columns read as a
    dictionary, each row group's batch rows (text_batches.py; BATCH_ROWS for
    a row group not listed), the footer already read (or None)."""
    dictionary: tuple[str, ...] = ()
    plain: tuple[str, ...] = ()  # read in `batch_rows`, the others in BATCH_ROWS
    batch_rows: tuple[int, ...] = ()
    metadata: Any = None

    def rows_of(self, group: int) -> int:
        return self.batch_rows[group] if group < len(self.batch_rows) else BATCH_ROWS


BATCH_ROWS = 65_536  # as contents.BATCH_ROWS


def problem(source: str | IO[bytes], columns: list[str], rows: int,
            side: Side = Side()) -> str | None:
    """None when DuckDB reads every value of `columns` of the Parquet file
    `source` (a path, or a file object of the whole content) and counts
    `rows`, else what is wrong (a phrase to follow the file's name). A server
    out of descriptors or memory is UNAVAILABLE (503), not a damaged file."""
    import duckdb

    try:
        return _problem(source, columns, rows, side)
    except (OSError, MemoryError) as exc:
        if (short := read_shortage(exc, DOING)) is not None:
            raise short from exc
        raise
    except duckdb.OutOfMemoryException as exc:  # opening the process's database: not a 500
        raise read_shortage(MemoryError(str(exc)), DOING) or exc from exc


DOING = "cannot check a file of the backup with DuckDB"


def _problem(source: str | IO[bytes], columns: list[str], rows: int,
             side: Side) -> str | None:
    import duckdb

    try:
        return _read(source, columns, rows, side)
    except (duckdb.FatalException, duckdb.InternalException):
        # DuckDB invalidated its whole database (this file, or another's
        # check before it): the process's one database would call every
        # later file unreadable, a good backup invalid, until a restart
        # (rowversions.py's alike). This file once more, on a new one.
        _forget()
        try:
            return _read(source, columns, rows, side)
        except (duckdb.FatalException, duckdb.InternalException) as exc:
            _forget()
            return f"cannot be read by DuckDB, which every query reads it with ({_why(exc, '')})"


def _why(exc: BaseException, path: str) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (text.replace(path, "the file") if path else text)[:300]


def _read(source: str | IO[bytes], columns: list[str], rows: int,
          side: Side) -> str | None:
    import duckdb

    with _path_of(source) as path, _cursor() as con:
        try:
            for part in _parts(columns):
                try:
                    wrong = _compared(con, path, part, rows, side)
                except duckdb.OutOfMemoryException as exc:
                    if len(part) > 1:
                        continue  # then one column at a time (_parts)
                    raise shortage(OSError(errno.ENOMEM, str(exc)), DOING) or exc from exc
                finally:
                    check_reader.release()
                if wrong is not None or len(part) == len(columns):
                    return wrong
        except (duckdb.FatalException, duckdb.InternalException):
            raise  # (_problem: a new database)
        except duckdb.Error as exc:
            if (short := shortage(exc, DOING) or stream_shortage(exc)) is not None:
                raise short from exc
            return f"cannot be read by DuckDB, which every query reads it with ({_why(exc, path)})"
    return None


def stream_shortage(exc: BaseException) -> Exception | None:
    """503 for DuckDB's error when pyarrow, reading the file into a stream
    DuckDB scans (`_stream`), could not allocate: "reading the stream
    registered as … failed: Out of memory: malloc of size … failed. Detail:
    Python exception: … MemoryError"; else None. It was "cannot be read by
    DuckDB": a RESTORE short of memory refused a sound backup
    BACKUP_INVALID, and VERIFY called it invalid (until 2026-12-08)."""
    text = str(exc)
    if "reading the stream registered as" not in text or not (
            "Out of memory" in text or "MemoryError" in text):
        return None
    return read_shortage(MemoryError(text.splitlines()[0]), DOING)


def _compared(con: Any, path: str, part: list[str], rows: int, side: Side) -> str | None:
    """None when DuckDB counts `rows` rows of `path` and its values of the
    columns `part` are pyarrow's, row by row; else what differs. Wide text
    columns (`_wide`) apart, by their values' SHA-256."""
    ours = _types(con, "SELECT * FROM read_parquet(?)", [path])
    wide = _wide(path, part, ours, side)
    if wide:
        if (wrong := _compared_by_hash(con, path, wide, rows, side, ours)) is not None:
            return wrong
        part = [n for n in part if n not in wide]
        if not part:
            return None
    with _pyarrow(con, path, part, side) as (joined, at, row, schemas):
        if (wrong := _type_difference(con, part, ours, schemas)) is not None:
            return wrong
        differs = " OR ".join(_differs(n, at[n], ours[n]) for n in part)
        # DuckDB's rows counted by its virtual `file_row_number` (a column
        # of that name in the file hides it: then counted apart).
        counting = "count(d.file_row_number)" if VIRTUAL not in ours else "0"
        got = con.execute(f"SELECT {counting}, min({row}) FILTER (WHERE {differs}) "
                          f"FROM read_parquet(?) d {joined}", [path]).fetchall()
    counted, first = got[0] if got else (0, None)
    if VIRTUAL in ours:
        (counted, _), = con.execute(f"SELECT count(*), max(hash({_q(VIRTUAL)})) "
                                    "FROM read_parquet(?)", [path]).fetchall()
    if counted != rows:
        return f"holds {counted} rows to DuckDB, its entry says {rows}"
    if first is not None:
        return _first_difference(con, path, part, side, first)
    return None


def _wide(path: str, part: list[str], ours: dict[str, str], side: Side) -> list[str]:
    """The TEXT and BYTES columns of `part` whose values take WIDE_ROW bytes
    a row or more (their chunks decoded, by the footer)."""
    text = [n for n in part if ours.get(n) in ("VARCHAR", "BLOB")]
    if not text:
        return []
    meta = side.metadata if side.metadata is not None else pq.read_metadata(path)
    if meta.num_rows < 1:
        return []
    at = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    return [n for n in text if n in at and sum(
        meta.row_group(g).column(at[n]).total_uncompressed_size
        for g in range(meta.num_row_groups)) >= WIDE_ROW * meta.num_rows]


def _compared_by_hash(con: Any, path: str, wide: list[str], rows: int, side: Side,
                      ours: dict[str, str]) -> str | None:
    """`_compared` for wide text columns, in two reads, one reader at a
    time: pyarrow's values' SHA-256 (and row numbers) into a table first,
    then DuckDB's read against it. Both readers at once, a row group of 1,024
    rows of 1 MiB took the comparison to 4.3-5.3 GB (DuckDB's read alone,
    1.1 GB). A difference found is named by `_first_difference`."""
    table = f"{PYARROW}_hashes"
    try:
        with _pyarrow(con, path, wide, side) as (_, at, row, schemas):
            if (wrong := _type_difference(con, wide, ours, schemas)) is not None:
                return wrong
            aliases = list(dict.fromkeys(at.values()))
            source = f"{PYARROW}_{aliases[0]} {aliases[0]}" + "".join(
                f" POSITIONAL JOIN {PYARROW}_{a} {a}" for a in aliases[1:])
            hashed = ", ".join(f"sha256({at[n]}.{_q(n)}) AS {_q(n)}" for n in wide)
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {hashed}, "
                        f"{row} AS {_q(HASHED_ROW)} FROM {source}")
        check_reader.release()  # pyarrow's memory back before DuckDB reads
        differs = " OR ".join(f"sha256(d.{_q(n)}) IS DISTINCT FROM h.{_q(n)}" for n in wide)
        counting = "count(d.file_row_number)" if VIRTUAL not in ours else "0"
        (counted, first), = con.execute(
            f"SELECT {counting}, min(h.{_q(HASHED_ROW)}) FILTER (WHERE {differs}) "
            f"FROM read_parquet(?) d POSITIONAL JOIN {table} h", [path]).fetchall()
        if VIRTUAL in ours:
            (counted,), = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchall()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    if counted != rows:
        return f"holds {counted} rows to DuckDB, its entry says {rows}"
    if first is not None:
        return _first_difference(con, path, wide, side, first)
    return None


def _type_difference(con: Any, names: list[str], ours: dict[str, str],
                     schemas: dict[str, pa.Schema]) -> str | None:
    """None when DuckDB's types of the columns `names` of the file (`ours`)
    are those of pyarrow's streams (`schemas`, by alias), else which is not."""
    theirs: dict[str, str] = {}
    for alias, schema in schemas.items():
        theirs.update(_arrow_types(con, alias, schema))
    for n in names:
        if ours.get(n) != theirs.get(n):
            return (f"has a column '{n}' the two Parquet readers take as different "
                    f"types (DuckDB, which every query reads it with: {ours.get(n)}; "
                    f"pyarrow, which the checks read: {theirs.get(n)})")
    return None


def _differs(name: str, alias: str, kind: str) -> str:
    """SQL true where DuckDB's value of column `name` is not pyarrow's (of the
    stream `alias`). `IS DISTINCT FROM` calls -0.0 and 0.0 equal, which a
    query tells apart (`-0.0`, 1 / x): a REAL or DOUBLE by its sign too."""
    ours, theirs = f"d.{_q(name)}", f"{alias}.{_q(name)}"
    differs = f"{ours} IS DISTINCT FROM {theirs}"
    if kind in ("DOUBLE", "FLOAT"):
        differs = f"({differs} OR signbit({ours}) IS DISTINCT FROM signbit({theirs}))"
    return differs


def _first_difference(con: Any, path: str, part: list[str], side: Side, first: int) -> str:
    """The first column the two readers differ on at row `first`, with both
    values (a file already found to differ: read again, to the row)."""
    ours = _types(con, "SELECT * FROM read_parquet(?)", [path])
    with _pyarrow(con, path, part, side) as (joined, at, row, _):
        terms = ", ".join(f"{_differs(n, at[n], ours[n])}, "
                          f"left(CAST(d.{_q(n)} AS VARCHAR), {SHOWN}), "
                          f"left(CAST({at[n]}.{_q(n)} AS VARCHAR), {SHOWN})" for n in part)
        found = con.execute(f"SELECT {terms} FROM read_parquet(?) d {joined} WHERE {row} = ?",
                            [path, first]).fetchall()
    for i, n in enumerate(part):
        if found and found[0][3 * i]:
            ours, theirs = found[0][1 + 3 * i], found[0][2 + 3 * i]
            return (f"{OTHERWISE}: the two Parquet readers disagree on column '{n}' at row "
                    f"{first} (DuckDB: {_shown(ours)}; pyarrow: {_shown(theirs)})")
    return OTHERWISE  # (not met: the same bytes read again)


@contextlib.contextmanager
def _pyarrow(con: Any, path: str, part: list[str],
             side: Side) -> Iterator[tuple[str, dict[str, str], str, dict[str, pa.Schema]]]:
    """pyarrow's batches of the columns `part`, registered in `con` as
    streams DuckDB scans (never the file's table whole): the text columns
    read plain in their small batches (side.plain), the others in
    BATCH_ROWS (one stream in small batches took a 300,000-row file's
    comparison 0.08 -> 0.25 s). Yields the POSITIONAL JOINs to follow
    `read_parquet(?) d` with, each column's stream, and pyarrow's row
    numbers (a column of the first stream), and each stream's schema."""
    plain = set(side.plain)
    small = [n for n in part if n in plain]
    others = [n for n in part if n not in plain]
    streams = [(a, cols) for a, cols in (("a", others), ("b", small)) if cols]
    row = _row(part)
    schemas: dict[str, pa.Schema] = {}
    with contextlib.ExitStack() as stack:
        for alias, cols in streams:
            wanted = set(cols)
            pf = stack.enter_context(CheckReader(
                path, [n for n in side.dictionary if n in wanted], buffer_size=1 << 20,
                metadata=side.metadata))
            reader = _stream(pf, cols, side if alias == "b" else Side(),
                             row if alias == streams[0][0] else None)
            schemas[alias] = reader.schema
            con.register(f"{PYARROW}_{alias}", reader)
            stack.callback(con.unregister, f"{PYARROW}_{alias}")
        yield (" ".join(f"POSITIONAL JOIN {PYARROW}_{a} {a}" for a, _ in streams),
               {n: a for a, cols in streams for n in cols}, f"{streams[0][0]}.{_q(row)}", schemas)


def _stream(pf: CheckReader, cols: list[str], side: Side, row: str | None) -> Any:
    """The columns `cols` of `pf`, a row group's batches at a time (and each
    row's number as the column `row`)."""
    arrow = pf.schema_arrow  # built on each access: once (a 4,094-column file's took 11 s)
    fields = [arrow.field(n) for n in cols]
    schema = pa.schema([*fields, (row, pa.int64())] if row else fields)

    def batches() -> Iterator[pa.RecordBatch]:
        at = 0
        for g in range(pf.metadata.num_row_groups):
            for batch in pf.iter_batches(side.rows_of(g), [g], cols):
                n = batch.num_rows
                numbers = [pa.array(np.arange(at, at + n, dtype=np.int64))] if row else []
                yield pa.RecordBatch.from_arrays([*batch.columns, *numbers], schema=schema)
                at += n

    return pa.RecordBatchReader.from_batches(schema, batches())


def _row(part: list[str]) -> str:
    """The name of pyarrow's row numbers: none of the columns'."""
    return next(name for i in range(len(part) + 1)
                if (name := "cairn_row" + "_" * i) not in part)


VIRTUAL = "file_row_number"  # DuckDB's, of read_parquet
WIDE_ROW = 16 << 10  # a text column of this many bytes a row is compared by hash (_wide)
HASHED_ROW = "#row"  # pyarrow's row numbers in the table of hashes (no column's name has `#`)
OTHERWISE = "is read otherwise by DuckDB, which every query reads it with, than by the checks"
PYARROW = "cairn_checked"  # the name pyarrow's batches are scanned by, in one cursor
SHOWN = 40  # characters of a differing value said


def _shown(value: Any) -> str:
    return "NULL" if value is None else repr(value)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _types(con: Any, query: str, params: list[Any]) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {query}", params).fetchall()}


# DuckDB's types of pyarrow's streams, by the stream's Arrow schema (fields
# and metadata, serialized): a function of that schema alone, and every file
# of a table has the same one; a DESCRIBE each was ~1 ms a file.
_arrow_typed: dict[bytes, dict[str, str]] = {}
ARROW_TYPED_MAX = 256


def _arrow_types(con: Any, alias: str, schema: pa.Schema) -> dict[str, str]:
    key = schema.serialize().to_pybytes()
    with _base_lock:
        known = _arrow_typed.get(key)
    if known is None:
        known = _types(con, f"SELECT * FROM {PYARROW}_{alias}", [])
        with _base_lock:
            if len(_arrow_typed) >= ARROW_TYPED_MAX:
                _arrow_typed.clear()
            _arrow_typed[key] = known
    return dict(known)


_base: tuple[int, Any] | None = None  # (pid, connection): one database a process
_base_lock = threading.Lock()


@contextlib.contextmanager
def _cursor() -> Iterator[Any]:
    """A cursor of this process's one private database (a connection costs
    ~18 ms, a cursor under 1: a restore of 10,000 small files)."""
    global _base
    import duckdb

    with _base_lock:
        if _base is None or _base[0] != os.getpid():  # never a parent's after a fork
            _base = (os.getpid(), duckdb.connect(":memory:", config={
                **scratch_config(), "preserve_insertion_order": True,  # (one thread: rows in order)
                # Nothing answered from the footer's statistics: every value read.
                "disabled_optimizers": NOT_BY_STATISTICS}))
        cursor = _base[1].cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def _forget() -> None:
    """The process's database is invalidated: the next cursor is of a new one
    (the old one goes with its last cursor; another thread's may be in use)."""
    global _base
    with _base_lock:
        _base = None


def _parts(columns: list[str]) -> Iterator[list[str]]:
    """Every column at once, then (if that ran out of memory: a row group of
    an older release held 1,000,000 rows whatever their width) one at a time."""
    yield columns
    if len(columns) > 1:
        yield from ([c] for c in columns)


@contextlib.contextmanager
def _path_of(source: str | IO[bytes]) -> Iterator[str]:
    """A path DuckDB can open for `source`: itself, its open descriptor, or
    (a spool still in memory, at most contents.SPOOL_MEMORY, or a file object
    with no descriptor) a copy in an anonymous memory file: nothing written
    to disk for it."""
    if isinstance(source, str):
        yield source
        return
    if getattr(source, "_rolled", True):  # a SpooledTemporaryFile in memory has none yet
        try:
            source.flush()
            fd = source.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None:
            yield f"/proc/self/fd/{fd}"
            return
    fd = os.memfd_create("cairn-check", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as copy:
            source.seek(0)
            shutil.copyfileobj(source, copy)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
