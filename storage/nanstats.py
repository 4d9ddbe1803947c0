"""Data files whose footer statistics hide NaN rows, rewritten without them.

Arrow leaves NaN out of a REAL or DOUBLE column's min and max, and DuckDB
skips a row group by them: `WHERE x > 2`, `x = 'NaN'::DOUBLE` and
`isnan(x)` missed the NaN rows of a flushed file, and an UPDATE or DELETE of
them changed nothing. Since 2026-12-06 a flush writes no statistics for such
a column (files.py `_with_statistics`), but files flushed before, and every
file of a backup taken before, still have them. So:

- `mend_data_dir` runs once when a data directory is opened (before any
  table is read; Meta `nan_stats` marks it done): each such file is written
  again, the catalog's records point at the new files in one batch, the
  write-ahead log is synced, and only then are the old files removed. A
  crash midway leaves unreferenced files that the start-up sweep removes,
  and the pass runs again.
- `mend_restored` does the same to a restore's fetched files before they
  are installed (nothing references them yet).

A file with no REAL/DOUBLE statistics costs a footer read; one with such
statistics, a read of those columns, a batch at a time; one rewritten holds
at most a row group (about ROW_GROUP_BYTES) in memory, whatever its source's
row groups. The rows, their order, the schema and the file's key-value
metadata are kept; the sha256 is the new bytes'."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog import Catalog, DataFile, Meta

from .files import (
    MIN_ROW_GROUP_ROWS,
    NAN_RULE,
    ROW_GROUP_BYTES,
    ROW_GROUP_ROWS,
    DamagedPath,
    FileStore,
    write_groups,
)

log = logging.getLogger("cairn.storage")

MARK = "nan_stats"  # Meta record: the data directory's files were mended
BATCH = 500  # records swapped in one catalog batch
BATCH_ROWS = 8192  # rows read at a time: a file is never held whole


def _with_min_max(pf: pq.ParquetFile) -> list[str]:
    """The REAL/DOUBLE columns that have min/max statistics in some row group."""
    meta, columns = pf.metadata, set()
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if (chunk.physical_type in ("FLOAT", "DOUBLE") and chunk.is_stats_set
                    and chunk.statistics.has_min_max):
                columns.add(chunk.path_in_schema)
    return sorted(c for c in columns if c in pf.schema_arrow.names)


def _holding_nan(pf: pq.ParquetFile, columns: list[str]) -> set[str]:
    """Those of `columns` that hold a NaN, read a batch at a time."""
    found: set[str] = set()
    if not columns:
        return found
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        for name in columns:
            if name not in found and pa.types.is_floating(batch.schema.field(name).type) \
                    and pc.any(pc.is_nan(batch.column(name))).as_py():
                found.add(name)
        if len(found) == len(columns):
            break
    return found


def hides_nan(path: Path) -> bool:
    """Whether a REAL or DOUBLE column of the file has min/max statistics in
    some row group and holds a NaN."""
    pf = pq.ParquetFile(path)
    said = pf.schema_arrow.metadata or {}
    if all(said.get(k) == v for k, v in NAN_RULE.items()):
        return False  # written by the rule (a forged claim hides no more than leaving rows out)
    return bool(_holding_nan(pf, _with_min_max(pf)))


def _groups(pf: pq.ParquetFile) -> Iterator[pa.Table]:
    """The file's rows in row groups of at least MIN_ROW_GROUP_ROWS (but the
    last) and at most ROW_GROUP_BYTES or so, as a flush cuts them: never
    more than one group and a batch in memory."""
    held: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        held.append(batch)
        rows, size = rows + batch.num_rows, size + batch.nbytes
        if rows >= MIN_ROW_GROUP_ROWS and (size >= ROW_GROUP_BYTES or rows >= ROW_GROUP_ROWS):
            yield pa.Table.from_batches(held, pf.schema_arrow)
            held, rows, size = [], 0, 0
    if held:
        yield pa.Table.from_batches(held, pf.schema_arrow)


def rewrite(files: FileStore, rec: DataFile) -> DataFile:
    """The file written again without statistics for its REAL/DOUBLE columns
    holding NaN (as a flush writes it now), in place but not yet referenced;
    its record names the new file."""
    path = files.abs(rec.path)
    pf = pq.ParquetFile(path)
    nan = _holding_nan(pf, [f.name for f in pf.schema_arrow if pa.types.is_floating(f.type)])
    stats = [n for n in pf.schema_arrow.names if n not in nan] if nan else True
    file_id, rel, size, sha = files.write_with(
        rec.table_uid, lambda tmp: write_groups(tmp, pf.schema_arrow, _groups(pf), stats))
    return replace(rec, file_id=file_id, path=rel, bytes=size, sha256=sha)


def mend_restored(files: FileStore, records: list[DataFile],
                  written: list[Path]) -> list[DataFile]:
    """A restore's fetched, unreferenced files: each that hides NaN rows is
    replaced by one that does not (in `written`, the paths removed should the
    restore fail, the new file takes the old one's place; the old is removed
    now)."""
    out = []
    for rec in records:
        if hides_nan(files.abs(rec.path)):
            new, gone = rewrite(files, rec), files.abs(rec.path)
            written.append(files.abs(new.path))
            if gone in written:  # synced again by the next member of a set's restore
                written.remove(gone)
            gone.unlink(missing_ok=True)
            rec = new
        out.append(rec)
    return out


def mend_data_dir(catalog: Catalog, files: FileStore) -> int:
    """Once a data directory (Meta MARK): its files that hide NaN rows
    written again, as the module says. How many were."""
    if catalog.get(Meta, MARK) is not None:
        return 0
    swaps: list[tuple[DataFile, DataFile]] = []
    for rec in catalog.scan(DataFile):
        try:
            if hides_nan(files.abs(rec.path)):
                swaps.append((rec, rewrite(files, rec)))
        except (DamagedPath, OSError, pa.ArrowException) as exc:  # told when read
            log.warning("data file %s could not be checked for NaN statistics: %s", rec.path, exc)
    for i in range(0, len(swaps), BATCH):
        batch = catalog.batch()
        for old, new in swaps[i:i + BATCH]:
            batch.delete(DataFile, old.key()).put(new)
        batch.commit()
    if swaps:
        catalog.flush_wal()  # the new records durable before the old files go
        for old, _ in swaps:
            files.abs(old.path).unlink(missing_ok=True)
        log.info("rewrote %d data files whose statistics hid NaN rows from filters", len(swaps))
    catalog.put(Meta(MARK, 1))
    return len(swaps)
