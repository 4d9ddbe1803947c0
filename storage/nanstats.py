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
statistics, a read of those columns, a batch at a time. A file is written
again by copying its pages as they are and writing its footer again without
those columns' statistics (footer_stats.py): no value is decoded, so no page
can decode to more than the file holds. The sha256 is the new bytes'. New
files say they follow the rule (files.NAN_RULE): not read at all."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog import Catalog, DataFile, Meta

from .files import NAN_RULE, DamagedPath, FileStore, write_copy
from .footer_stats import FooterError, without_statistics

log = logging.getLogger("cairn.storage")

MARK = "nan_stats"  # Meta record: the data directory's files were mended
BATCH = 500  # records swapped in one catalog batch
BATCH_ROWS = 8192  # rows of the REAL/DOUBLE columns read at a time
MAGIC = b"PAR1"


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


def rewrite(files: FileStore, rec: DataFile) -> DataFile:
    """The file again with another footer: its REAL/DOUBLE columns holding
    NaN without statistics (as a flush writes them now), every page as it
    was; in place but not yet referenced. Its record names the new file.
    FooterError if the footer cannot be walked (the file is left alone)."""
    path = files.abs(rec.path)
    pf = pq.ParquetFile(path)
    meta = pf.metadata
    nan = _holding_nan(pf, _with_min_max(pf))
    leaves = {c for c in range(meta.num_columns) if meta.schema.column(c).path in nan}
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - 8))
        end = f.read(8)
        length = int.from_bytes(end[:4], "little")
        if len(end) != 8 or end[4:] != MAGIC or length > size - 12:
            raise FooterError("not a plain Parquet file's end")
        f.seek(size - 8 - length)
        footer = f.read(length)
    tail = without_statistics(footer, leaves)
    tail += len(tail).to_bytes(4, "little") + MAGIC
    file_id, rel, new_size, sha = files.write_with(
        rec.table_uid, lambda tmp: write_copy(tmp, path, size - 8 - length, tail))
    return replace(rec, file_id=file_id, path=rel, bytes=new_size, sha256=sha)


def mend_restored(files: FileStore, records: list[DataFile],
                  written: list[Path]) -> list[DataFile]:
    """A restore's fetched, unreferenced files: each that hides NaN rows is
    replaced by one that does not (in `written`, the paths removed should the
    restore fail, the new file takes the old one's place; the old is removed
    now)."""
    out = []
    for rec in records:
        if hides_nan(files.abs(rec.path)):
            try:
                new, gone = rewrite(files, rec), files.abs(rec.path)
            except FooterError as exc:  # read by pyarrow, not by the walk: left as it was
                log.warning("restored data file %s keeps statistics that hide NaN rows from "
                            "filters: %s", rec.path, exc)
                out.append(rec)
                continue
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
        except (DamagedPath, OSError, pa.ArrowException, FooterError) as exc:  # told when read
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
