"""Flush: buffered rows become an immutable zstd Parquet file (one per user for
USER tables), registered in the catalog in the same atomic batch that deletes
them from the buffer. Stream tables are never flushed; their rows expire."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from catalog import Batch, Catalog, DataFile
from catalog.errors import NotFound

from . import allocator, bufclock, bufstore, priority
from .batch import BufBatch, batch_bytes
from .buffer import TableState, storage_schema
from .config import EngineConfig
from .conversion import cached_lead, convert_after
from .fileparts import footer_of, write_parts
from .files import FileStore
from .keyfilter import FileFilters, build_from_rows
from .keys import key_range, without_null_keys
from .timing import TIMINGS
from .types import SEQ

log = logging.getLogger("cairn.storage")


def flush(catalog: Catalog, files: FileStore, st: TableState,
          progress: Callable[..., Any] | None = None,
          filters: FileFilters | None = None,
          own: tuple[str | None] | None = None,
          on_install: Callable[[Batch, dict[str, int]], None] | None = None) -> dict[str, int]:
    """Write the table's buffered rows to Parquet; returns rows, files, bytes
    and all_rows. `on_install(batch, out)` may add records to the batch that
    installs the files (the flush's job row: server/tables.py), `out` what
    the flush returns. Each file's key filter goes to `filters` (storage/keyfilter.py).
    `progress(files_done=, files_total=, bytes_done=, rows=)` is called between
    files and may raise (e.g. Cancelled): nothing is then registered and the
    files written so far are removed. `own = (user,)`: of a USER table only
    `user`'s rows are flushed, as only they make a role-user's FLUSH due
    (`users_flush_due`), and rows, files, bytes and the progress count only
    theirs; `all_rows` counts every row flushed."""
    report = progress or (lambda **_: None)
    if st.table.table_type == "stream":
        return {"rows": 0, "files": 0, "bytes": 0, "all_rows": 0}
    with st.flush_lock:
        with st.lock:
            batches = list(st.batches.values())
            generation = st.batches.generation
            table, columns, version = st.table, list(st.columns), st.schema.version
            cached = st.cached_buffer() if table.table_type != "user" else None
        if own is not None and table.table_type == "user":
            batches = [b for b in batches if b.user == own[0]]
        if not batches:
            return {"rows": 0, "files": 0, "bytes": 0, "all_rows": 0}
        groups: dict[str | None, list[BufBatch]] = {}
        for b in batches:
            groups.setdefault(b.user if table.table_type == "user" else None, []).append(b)
        schema = storage_schema(table, columns)
        loose = pa.schema([f.with_nullable(True) for f in schema])
        written: list[DataFile] = []
        rows_done = bytes_done = files_done = 0
        counted = [u for u in groups
                   if own is None or table.table_type != "user" or u == own[0]]
        report(files_done=0, files_total=len(counted), bytes_done=0, rows=0)
        try:
            for user, group in groups.items():
                # Only what the table's cached conversion (a BACKUP's snapshot
                # leaves one) does not already hold is converted here.
                start = cached_lead(cached, version, tuple(b.key for b in group))
                # Python values into Arrow, holding the GIL ~1 ms a chunk: at
                # the server's own priority, as a lowered thread preempted in
                # the middle of one keeps every statement waiting for the GIL
                # (an INSERT waited 14-25 ms at each flush: docs/performance.md).
                rows = priority.at_normal_priority(partial(
                    convert_after, cached[2] if start and cached else None, start, group,
                    table, columns, version, loose, schema))
                # Rows whose key is NULL (an older Cairn's UPDATE ... JOIN) are no
                # rows of the table, and no file may hold one (a backup of it
                # would not verify): they leave the buffer without a file.
                rows, dropped = without_null_keys(table.primary_key, rows)
                if dropped:
                    log.warning("flush of %s.%s dropped %d row(s) whose primary key is NULL",
                                table.namespace, table.name, dropped)
                if not rows.num_rows:
                    continue
                meta = {b"cairn.schema_version": str(version).encode(),
                        b"cairn.table_uid": table.uid.encode()}
                # One file, but for very many rows of a very wide table (fileparts.py).
                for part, (file_id, rel, size, sha) in write_parts(
                        rows, partial(files.write, table.uid, metadata=meta),
                        lambda w: footer_of(str(files.abs(w[1]))),
                        lambda w: files.retire([w[1]])):
                    seqs = part.column(SEQ)
                    written.append(DataFile(
                        table_uid=table.uid, file_id=file_id, path=rel, rows=part.num_rows,
                        bytes=size, sha256=sha, schema_version=version, user_id=user,
                        min_seq=int(pc.min(seqs).as_py()), max_seq=int(pc.max(seqs).as_py()),
                        key_range=key_range(part, columns, table.primary_key),
                    ))
                    if filters is not None:  # before the file is visible: no INSERT reads it
                        filters.add(rel, build_from_rows(part, columns, table.primary_key))
                    if user in counted:
                        rows_done += part.num_rows
                        bytes_done += size
                        files_done += 1
                        report(files_done=files_done, files_total=max(files_done, len(counted)),
                               bytes_done=bytes_done, rows=rows_done)
            # Made before the table's lock, which every writer of the table
            # waits for: a buffer of 10,000 single-row INSERTs is 10,000
            # entries to take off, and making a delete and reckoning the bytes
            # of each held the lock ~45 ms (docs/performance.md).
            wb = catalog.batch()
            for f in written:
                wb.put(f)
            sizes = [batch_bytes(b) for b in batches]
            rows_total = sum(b.num_rows for b in batches)
            keys = [b.key for b in batches]
            lo, hi = min(keys), max(keys)
            with st.lock, TIMINGS.timed("flush_register"):
                if st.dropped:
                    raise NotFound(f"Table '{table.namespace}.{table.name}' does not exist")
                held = st.batches
                whole = held.leads_with(generation, len(batches), hi)
                keyspace = st.prefix  # the table's keys in the shared family
                if whole:
                    # The flushed batches are all the buffer's keys up to `hi`
                    # (the lock keeps the buffer and its family the same keys):
                    # one range tombstone, where 10,000 deletes held the GIL
                    # ~5 ms in RocksDB's write.
                    wb.delete_range_raw(st.family, keyspace + lo, keyspace + hi + b"\0")
                else:  # a write since, with a key among theirs: one by one
                    for key in keys:
                        wb.delete_raw(st.family, keyspace + key)
                out = {"rows": rows_done, "files": files_done, "bytes": bytes_done,
                       "all_rows": sum(f.rows for f in written)}
                if on_install is not None:
                    on_install(wb, out)
                wb.commit()
                st.files = [*st.files, *written]
                if whole:
                    held.remove_first(len(batches), rows_total, sum(sizes))
                else:
                    held.remove_flushed(batches, sizes)
                st.keys.removed(st.batches, st.table.primary_key, st.table.table_type == "user")
                st.forget_conversions()
        except BaseException:
            files.retire([f.path for f in written])
            if filters is not None:
                filters.forget([f.path for f in written])
            raise
    return out


def tidy(catalog: Catalog, st: TableState, out: dict[str, int], release_memory: bool) -> None:
    """After a flush that moved rows: `release` (if `release_memory`) and
    `compact`. A DROP TABLE waiting on the flush runs as soon as the flush
    ends: the table is then gone with its buffer family and files, the flush
    among them, and the flush's answer is NotFound (nothing was left flushed)."""
    if out["all_rows"] and not st.dropped:
        if release_memory:
            release(catalog, st)
        compact(catalog, st)
    if st.dropped:
        raise NotFound(f"Table '{st.table.namespace}.{st.table.name}' does not exist")


# The buffers' memtable size from which a flush writes it out: each write-out
# leaves a file (the flush's range tombstone), which `bufstore.tidy` then has
# to compact away (a forced compaction: a single INSERT beside waited up to
# 20 ms); below it the memtable keeps the few rows until it fills.
RELEASE_BYTES = 512 * 1024


def release(catalog: Catalog, st: TableState) -> None:
    """After a flush: the rows live in Parquet, so their copies in RocksDB's
    memtable (RELEASE_BYTES or more of them) and the memory the flush used go
    back to the OS. Written out too when the family's files could hold rows
    to compact away: the flush's tombstone counts only once on disk."""
    try:
        fam = catalog.family(st.family)
        held = fam.property_int_value("rocksdb.size-all-mem-tables") or 0
        on_disk = fam.property_int_value("rocksdb.total-sst-files-size") or 0
        if held >= RELEASE_BYTES or on_disk >= COMPACT_DELETED_BYTES:
            catalog.flush_family(st.family)
    except Exception:  # the flush is committed: only the memory waits for RocksDB
        _failed("memtable flush", st)
    allocator.purge()


def _failed(what: str, st: TableState) -> None:
    """A memtable flush or compaction after a flush failed: quiet when a DROP
    TABLE took the family away meanwhile (nothing is left to tidy)."""
    if st.dropped:
        log.debug("%s of %s.%s skipped: the table was dropped", what, st.table.namespace,
                  st.table.name)
        return
    log.warning("%s of %s.%s failed", what, st.table.namespace, st.table.name, exc_info=True)


# A buffer family is compacted after a flush once this many bytes of its SST
# files are rows the flush deleted (catalog.compact_deleted).
COMPACT_DELETED_BYTES = 16 * 1024**2


def compact(catalog: Catalog, st: TableState) -> None:
    """After a flush: drop the deleted rows RocksDB had already written to
    disk, so no later scan of the buffer steps over them, and the files the
    flushes' tombstones leave (bufstore.tidy)."""
    try:
        bufstore.tidy(catalog, COMPACT_DELETED_BYTES)
    except Exception:  # the flush is committed: only the disk space waits
        _failed("compaction of the buffer", st)


def flush_rows_of(cfg: EngineConfig, st: TableState) -> int:
    return int(st.table.options.get("flush_rows") or cfg.flush_rows)


def flush_interval_of(cfg: EngineConfig, st: TableState) -> float:
    return float(st.table.options.get("flush_interval_seconds") or cfg.flush_interval_seconds)


# A role-user's FLUSH writes a table's buffer out only once the table is this
# far along to flushing by itself: each of their FLUSHes wrote a Parquet file
# of whatever was buffered (one row), and nothing merges files (600 one-row
# FLUSHes: 601 files, count(*) ten times slower). So their FLUSHes make at
# most about 1 / USER_FLUSH_SHARE times the files the table makes by itself.
USER_FLUSH_SHARE = 0.1


def users_flush_due(cfg: EngineConfig, st: TableState, user: str | None) -> bool:
    """Does a role-user's FLUSH of `st` write it out? Yes when its buffer holds
    at least USER_FLUSH_SHARE of `flush_rows` (or of `flush_bytes`), or a row
    buffered at least USER_FLUSH_SHARE of `flush_interval_seconds` ago; an
    empty buffer too (nothing is written). Of a USER table only `user`'s rows
    count, as only they are flushed (`flush`'s `own`): counting every user's
    told a role-user with no rows whether others had 1-999 rows buffered
    ("Nothing flushed") or none or more (a flush)."""
    with st.lock:
        if st.table.table_type == "user":
            mine = [b for b in st.batches.values() if b.user == user]
            n = sum(b.num_rows for b in mine)
            nbytes = sum(batch_bytes(b) for b in mine)
            oldest = mine[0].ts if mine else None  # batches are in commit order
        else:
            n = st.buffered_rows()
            nbytes = st.buffered_bytes()
            oldest = st.oldest_ts()
    return not n or (
        n >= USER_FLUSH_SHARE * flush_rows_of(cfg, st)
        or nbytes >= USER_FLUSH_SHARE * cfg.flush_bytes
        or oldest is not None
        and bufclock.now() - oldest >= USER_FLUSH_SHARE * flush_interval_of(cfg, st))


def due(cfg: EngineConfig, states: list[TableState]) -> list[tuple[str, str]]:
    """Tables whose buffer passed `flush_rows` or `flush_bytes`, or holds a
    row older than `flush_interval_seconds`."""
    now = bufclock.now()  # as buffered rows' times are stamped
    out = []
    for st in states:
        if st.table.table_type == "stream":
            continue
        with st.lock:
            n = st.buffered_rows()
            nbytes = st.buffered_bytes()
            oldest = st.oldest_ts()
        if n and (n >= flush_rows_of(cfg, st) or nbytes >= cfg.flush_bytes
                  or (oldest is not None and now - oldest >= flush_interval_of(cfg, st))):
            out.append((st.table.namespace, st.table.name))
    return out


def evict(catalog: Catalog, st: TableState) -> int:
    """Delete a stream table's entries older than `ttl_seconds`."""
    floor = st.ttl_floor()
    if floor is None:
        return 0
    with st.write_lock, st.lock:
        old = [b for b in st.batches.values() if b.ts < floor]
        if not old:
            return 0
        wb = catalog.batch()
        for b in old:
            wb.delete_raw(st.family, st.prefix + b.key)
        wb.commit()
        for b in old:
            st.batches.pop(b.key, None)
        st.keys.removed(st.batches, st.table.primary_key, st.table.table_type == "user")
    return sum(b.num_rows for b in old)
