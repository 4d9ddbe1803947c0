"""Flush: buffered rows become an immutable zstd Parquet file (one per user for
USER tables), registered in the catalog in the same atomic batch that deletes
them from the buffer. Stream tables are never flushed; their rows expire."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from catalog import DataFile
from catalog.errors import NotFound

from .buffer import BufBatch, TableState, conform, storage_schema
from .keys import key_range
from .types import SEQ

if TYPE_CHECKING:
    from .engine import Engine


def flush(engine: Engine, st: TableState, progress: Callable[..., Any] | None = None) -> dict[str, int]:
    """Write the table's buffered rows to Parquet; returns rows, files, bytes.
    `progress(files_done=, files_total=, bytes_done=, rows=)` is called between
    files and may raise (e.g. Cancelled): nothing is then registered and the
    files written so far are removed."""
    report = progress or (lambda **_: None)
    if st.table.table_type == "stream":
        return {"rows": 0, "files": 0, "bytes": 0}
    with st.flush_lock:
        with st.lock:
            batches = list(st.batches.values())
            table, columns, version = st.table, list(st.columns), st.schema.version
        if not batches:
            return {"rows": 0, "files": 0, "bytes": 0}
        groups: dict[str | None, list[BufBatch]] = {}
        for b in batches:
            groups.setdefault(b.user if table.table_type == "user" else None, []).append(b)
        schema = storage_schema(table, columns)
        loose = pa.schema([f.with_nullable(True) for f in schema])
        written: list[DataFile] = []
        rows_done = bytes_done = 0
        report(files_done=0, files_total=len(groups), bytes_done=0, rows=0)
        try:
            for user, group in groups.items():
                parts = [conform(b.rows, b.version, table, columns).cast(loose) for b in group]
                rows = pa.concat_tables(parts).combine_chunks()
                seqs = rows.column(SEQ)
                meta = {b"cairn.schema_version": str(version).encode(),
                        b"cairn.table_uid": table.uid.encode()}
                file_id, rel, size, sha = engine.files.write(table.uid, rows, meta)
                written.append(DataFile(
                    table_uid=table.uid, file_id=file_id, path=rel, rows=rows.num_rows,
                    bytes=size, sha256=sha, schema_version=version, user_id=user,
                    min_seq=int(pc.min(seqs).as_py()), max_seq=int(pc.max(seqs).as_py()),
                    key_range=key_range(rows, columns, table.primary_key),
                ))
                rows_done += rows.num_rows
                bytes_done += size
                report(files_done=len(written), files_total=len(groups), bytes_done=bytes_done,
                       rows=rows_done)
            with st.lock:
                if st.dropped:
                    raise NotFound(f"Table '{table.namespace}.{table.name}' does not exist")
                b = engine.catalog.batch()
                for f in written:
                    b.put(f)
                for batch in batches:
                    b.delete_raw(st.family, batch.key)
                b.commit()
                st.files = [*st.files, *written]
                for batch in batches:
                    st.batches.pop(batch.key, None)
                st.keys.removed()
        except BaseException:
            engine.files.retire([f.path for f in written])
            raise
    return {"rows": rows_done, "files": len(written), "bytes": bytes_done}


def due(engine: Engine, states: list[TableState]) -> list[tuple[str, str]]:
    """Tables whose buffer passed `flush_rows` or holds a row older than
    `flush_interval_seconds`."""
    now = time.time()
    out = []
    for st in states:
        if st.table.table_type == "stream":
            continue
        with st.lock:
            n = st.buffered_rows()
            oldest = st.oldest_ts()
        if n and (n >= engine.flush_rows_of(st) or (oldest is not None and now - oldest >= engine.flush_interval_of(st))):
            out.append((st.table.namespace, st.table.name))
    return out


def evict(engine: Engine, st: TableState) -> int:
    """Delete a stream table's entries older than `ttl_seconds`."""
    floor = st.ttl_floor()
    if floor is None:
        return 0
    with st.write_lock, st.lock:
        old = [b for b in st.batches.values() if b.ts < floor]
        if not old:
            return 0
        wb = engine.catalog.batch()
        for b in old:
            wb.delete_raw(st.family, b.key)
        wb.commit()
        for b in old:
            st.batches.pop(b.key, None)
        st.keys.removed()
    return sum(b.num_rows for b in old)
