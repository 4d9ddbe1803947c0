"""The read-only `system.*` tables, built from catalog records as Arrow tables
when a query names them. Timestamps are TIMESTAMP (UTC), JSON columns carry
`cairn.type = JSON` so results show JSON values."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pyarrow as pa
from sqlglot import exp

from catalog import Archive, Backup, Job, Namespace, Schedule, Table, TableSchema
from catalog.errors import NotFound

from .backup.origin import Origin, recorded_own
from .buffer import DamagedBuffer, TableState
from .ports import SystemSource
from .types import describe_column

TEXT, BIGINT, DOUBLE, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("us")
JSON = "json"

COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "namespaces": [("namespace", TEXT), ("created_at", TS), ("table_count", BIGINT),
                   ("options", JSON)],
    "tables": [("namespace", TEXT), ("table_name", TEXT), ("table_type", TEXT),
               ("schema_version", BIGINT), ("created_at", TS), ("options", JSON),
               ("buffered_rows", BIGINT), ("flushed_rows", BIGINT), ("files", BIGINT),
               ("bytes", BIGINT)],
    "table_schemas": [("namespace", TEXT), ("table_name", TEXT), ("version", BIGINT),
                      ("columns", JSON), ("created_at", TS)],
    "jobs": [("job_id", TEXT), ("job_type", TEXT), ("status", TEXT), ("namespace", TEXT),
             ("target", TEXT), ("backup_id", TEXT), ("statement", TEXT), ("user_id", TEXT),
             ("created_at", TS), ("started_at", TS), ("finished_at", TS),
             ("fraction_completed", DOUBLE), ("files_done", BIGINT), ("files_total", BIGINT),
             ("bytes_done", BIGINT), ("bytes_total", BIGINT), ("rows", BIGINT),
             ("result", JSON), ("error_message", TEXT), ("node_id", TEXT),
             ("waiting_for", TEXT)],
    "backups": [("backup_id", TEXT), ("namespace", TEXT), ("target", TEXT),
                ("created_at", TS), ("snapshot_at", TS), ("tables", BIGINT), ("rows", BIGINT),
                ("files", BIGINT), ("bytes", BIGINT), ("bytes_written", BIGINT),
                ("label", TEXT), ("encrypted", BOOL), ("row_versions", BIGINT),
                ("scope", TEXT), ("own", BOOL)],
    "schedules": [("name", TEXT), ("namespace", TEXT), ("target", TEXT), ("every", TEXT),
                  ("keep_last", BIGINT), ("created_at", TS), ("next_run_at", TS),
                  ("last_job_id", TEXT), ("last_status", TEXT), ("cron", TEXT)],
    "archives": [("namespace", TEXT), ("target", TEXT), ("status", TEXT),
                 ("archived_until", TS), ("lag_ms", BIGINT), ("segments", BIGINT),
                 ("bytes", BIGINT), ("last_error", TEXT)],
}  # fmt: skip

NAMES = tuple(COLUMNS)


def schema_of(name: str) -> pa.Schema:
    fields = []
    for col, typ in COLUMNS[name]:
        if typ == JSON:
            fields.append(pa.field(col, TEXT, metadata={b"cairn.type": b"JSON"}))
        else:
            fields.append(pa.field(col, typ))
    return pa.schema(fields)


def parse_ts(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


def _namespaces(namespaces: list[Namespace], tables: list[Table]) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for t in tables:
        counts[t.namespace] = counts.get(t.namespace, 0) + 1
    return [
        {"namespace": ns.name, "created_at": ns.created_at, "table_count": counts.get(ns.name, 0),
         "options": ns.options}
        for ns in namespaces
    ]


def _tables(engine: SystemSource) -> list[dict[str, Any]]:
    """One row per table, its counts from its state. A table whose state is
    gone by then (dropped, or swapped by a RESTORE ... WITH (replace = true)
    since the scan) makes the whole list be read again: the swapped table was
    left out, or listed with 0 rows and 0 files (its state emptied)."""
    for attempt in range(SCANS):
        rows, again = [], False
        for t in engine.catalog.scan(Table):
            row = {"namespace": t.namespace, "table_name": t.name, "table_type": t.table_type,
                   "schema_version": t.schema_version, "created_at": t.created_at,
                   "options": t.options}
            try:
                row.update(engine.stats(t))
            except DamagedBuffer:  # listed, its counts unknown (it was left out in silence)
                row.update(dict.fromkeys(COUNTS))
            except NotFound:  # dropped or replaced since the scan: read them all again
                again = True
                if attempt < SCANS - 1:
                    break
                continue  # (a restore or DDL in a loop: the last scan leaves it out)
            except Exception:  # a table dropped while we looked
                continue
            rows.append(row)
        if not again:
            break
    return rows


SCANS = 4

COUNTS = ("buffered_rows", "flushed_rows", "files", "bytes")


def user_stats(st: TableState, user: str | None) -> dict[str, int]:
    """`Engine.stats` of a USER table counting only `user`'s rows: their
    buffered batches and their files (each file of a USER table holds one
    user's rows: storage/flush.py), as a query of theirs reads them."""
    with st.lock:
        files = [f for f in st.files if f.user_id == user]
        buffered = sum(b.num_rows for b in st.batches.values() if b.user == user)
    return {"buffered_rows": buffered, "flushed_rows": sum(f.rows for f in files),
            "files": len(files), "bytes": sum(f.bytes for f in files)}


def _schemas(schemas: list[TableSchema]) -> list[dict[str, Any]]:
    return [
        {"namespace": s.namespace, "table_name": s.table_name, "version": s.version,
         "columns": [describe_column(c) for c in s.columns], "created_at": s.created_at}
        for s in sorted(schemas, key=lambda s: (s.namespace, s.table_name, s.version))
    ]


def _records(records: list[Any]) -> list[dict[str, Any]]:
    return [r.__dict__ for r in records]


def _backups(backups: list[Backup], namespaces: list[Namespace],
             server: str = "") -> list[dict[str, Any]]:
    """Each backup record, and `own`: whether it is a backup of this server's
    (`server`) namespace of that name, by the rule a RESTORE without backup_id
    takes one by (origin.recorded_own: false for another server's database of
    that name, NULL when the record cannot tell), as SHOW BACKUPS says it and
    the web console's Backup age panel reads it."""
    origins = {ns.name: Origin(server, ns.created_at, ns.restored_from) for ns in namespaces}
    return [{**b.__dict__, "own": recorded_own(origins.get(b.namespace) or Origin(server),
                                               b.server, b.namespace_created_at,
                                               b.job_id is not None)} for b in backups]


# Tables built from catalog records only: (the record kinds read, the rows from
# those records). While the kinds' raw records are unchanged, the Arrow table
# built last time is reused (reading raw records costs microseconds; decoding
# them and building Arrow, ~0.2 ms), and the same object stays registered on
# each thread's DuckDB cursor. The rows are built from the very records the
# cache key holds, so a cached table is always exactly its key's.
FROM_RECORDS: dict[str, tuple[tuple[type, ...], Callable[..., list[dict[str, Any]]]]] = {
    "namespaces": ((Namespace, Table), _namespaces),
    "table_schemas": ((TableSchema,), _schemas),
    "jobs": ((Job,), _records),
    "backups": ((Backup, Namespace), _backups),
    "schedules": ((Schedule,), _records),
}


def archives(engine: SystemSource) -> list[dict[str, Any]]:
    """Continuous archiving per namespace; `lag_ms` is live: how long the oldest
    change not yet in the target has waited."""
    rows = []
    for a in engine.catalog.scan(Archive):
        until = a.shipped_us if a.base_lsn is not None else None
        rows.append({
            "namespace": a.namespace, "target": a.target, "status": a.status,
            "archived_until": (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=until)
                               if until else None),
            "lag_ms": 0 if a.status == "stopped" else engine.changes.lag_ms(a.namespace),
            "segments": a.segments, "bytes": a.bytes, "last_error": a.last_error,
        })
    return rows


# The others also show live figures (buffered rows, files): built every time.
BUILDERS: dict[str, Callable[[SystemSource], list[dict[str, Any]]]] = {
    "tables": _tables, "archives": archives}


def build(engine: SystemSource, name: str) -> pa.Table | None:
    """`system.<name>` as Arrow, or None if there is no such system table."""
    if name not in COLUMNS:
        return None
    cache = engine.system_cache
    if name not in FROM_RECORDS:
        rows = BUILDERS[name](engine)
        hit = cache.get(name)
        if hit is not None and hit[0] == rows:
            return hit[1]
        table = _arrow(name, rows)
        cache[name] = (rows, table)
        return table
    kinds, make = FROM_RECORDS[name]
    raw = tuple(tuple(engine.catalog.scan_raw(kind.FAMILY)) for kind in kinds)  # type: ignore[attr-defined]
    hit = cache.get(name)
    if hit is not None and hit[0] == raw:
        return hit[1]
    # whose a backup is: this server's id (and its namespaces, the second kind)
    rows_of = partial(_backups, server=engine.catalog.server_id()) if make is _backups else make
    table = None
    if hit is not None and make in (_records, _backups) and hit[0][1:] == raw[1:]:
        rest = [[kind.loads(v) for _, v in items] for kind, items in zip(kinds[1:], raw[1:], strict=True)]  # type: ignore[attr-defined]
        table = _extended(name, kinds[0], hit[0][0], hit[1], raw[0],
                          lambda first: rows_of(first, *rest))
    if table is None:
        records = [[kind.loads(v) for _, v in items] for kind, items in zip(kinds, raw, strict=False)]  # type: ignore[attr-defined]
        table = _arrow(name, rows_of(*records))
    cache[name] = (raw, table)
    return table


CHUNKS_KEPT = 32  # an extended table past this many chunks is copied into one


def _extended(name: str, kind: Any, old: tuple[tuple[bytes, bytes], ...], built: pa.Table,
              now: tuple[tuple[bytes, bytes], ...],
              rows_of: Callable[[list[Any]], list[dict[str, Any]]]) -> pa.Table | None:
    """`system.<name>` of the records `now` from the table `built` of the
    records `old`: the longest run of `now`, from its first, that `old` holds
    unchanged (same keys, same bytes, in order) is taken from `built`, and
    only the records after it are decoded (their rows: `rows_of`). A job's
    progress rewrites its row every 50 ms, and the web console asks for
    system.jobs every second: with
    10,000 jobs of history each such read decoded and converted all of them,
    ~150 ms of the GIL beside the statements (docs/performance.md). None
    when no such run starts the records (build them all)."""
    if not now or not old or built.num_rows != len(old):
        return None
    first = now[0][0]
    start = 0 if old[0][0] == first else next(
        (i for i, (key, _) in enumerate(old) if key == first), -1)
    if start < 0:
        return None
    n, most = 0, min(len(now), len(old) - start)
    while n < most and now[n] == old[start + n]:
        n += 1
    if n == 0:
        return None
    parts = [built.slice(start, n)]
    if n < len(now):
        parts.append(_arrow(name, rows_of([kind.loads(v) for _, v in now[n:]])))
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if table.column(0).num_chunks > CHUNKS_KEPT:
        table = table.combine_chunks()
    return table


def _arrow(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = schema_of(name)
    arrays = []
    for col, typ in COLUMNS[name]:
        values = [r.get(col) for r in rows]
        if typ == JSON:
            values = [_json(v) for v in values]
        elif typ == TS:
            values = [parse_ts(v) for v in values]
        arrays.append(pa.array(values, TEXT if typ == JSON else typ))
    return pa.Table.from_arrays(arrays, schema=schema)


_SELECT_ARGS = frozenset({"expressions", "from", "from_"})


def whole_system_table(e: exp.Expression) -> str | None:
    """The name x if `e` is exactly `SELECT * FROM system.x [AS alias]`: its
    result is the system table as built (same columns, types, rows, order)."""
    if not isinstance(e, exp.Select) or any(v for k, v in e.args.items() if k not in _SELECT_ARGS):
        return None
    if len(e.expressions) != 1 or not isinstance(e.expressions[0], exp.Star):
        return None
    if any(e.expressions[0].args.values()):  # EXCLUDE, REPLACE, ...
        return None
    source = e.args.get("from") or e.args.get("from_")
    t = source.this if isinstance(source, exp.From) else None
    if not isinstance(t, exp.Table) or not isinstance(t.this, exp.Identifier):
        return None
    if any(v for k, v in t.args.items() if k not in ("this", "db", "alias")):
        return None
    alias = t.args.get("alias")
    if alias is not None and (not isinstance(alias, exp.TableAlias) or alias.args.get("columns")):
        return None
    return t.name if t.db == "system" else None
