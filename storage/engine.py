"""The storage engine: tables, rows and queries over one catalog and one DuckDB.

Every method is synchronous and thread-safe; the server calls them through
`cairn.run` (its I/O thread pool). Per table, three locks in a fixed order:
`flush_lock` (one flush or DDL at a time) -> `write_lock` (one writing statement
at a time) -> `lock` (held for a few microseconds: a commit, or a query copying
the table's files and buffer). A query therefore always sees each table as of
one commit, and a writer is never held up by a running query."""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from catalog import Catalog, DataFile, Meta, Namespace, Table, TableSchema, schema_key, table_key
from catalog.errors import AlreadyExists, Cancelled, InvalidArgument, NotFound, PermissionDenied
from catalog.ids import new_id
from catalog.records import SEP

from . import dml, duck, flush, keys, sandbox, schema, system_tables
from .archive import changes as change_log
from .buffer import PREFIX, TableState, conform, decode, family_name
from .files import FileStore
from .query import Plan, ResultLimits, mark_json, plan_query, release
from .snapshot import NamespaceSnapshot, TableSnapshot

log = logging.getLogger("cairn.storage")

APPEND_ONLY = "append_only:"  # Meta record: the table has never had a key overwritten

SMALL_QUERY_ROWS = 100_000  # input rows (files + buffers + system tables) of a "small" query
SMALL_JOIN_ROWS = 10_000  # the same, for a query that joins (its output can be far larger)


def _is_small(plan: Plan) -> bool:
    """Does the plan go to the single-threaded DuckDB? Only if it reads few
    rows and can make few: no table function, and a join only of small tables."""
    if plan.table_function:
        return False
    return plan.rows <= (SMALL_QUERY_ROWS if plan.refs <= 1 else SMALL_JOIN_ROWS)


class _Cursor:
    """One thread's cursor on one DuckDB (nothing stays registered on it between queries)."""

    __slots__ = ("__weakref__", "cur", "slot")

    def __init__(self, cur: duckdb.DuckDBPyConnection, slot: str) -> None:
        self.cur = cur
        self.slot = slot


class _Alarm:
    __slots__ = ("fired", "fn")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn: Callable[[], Any] | None = fn
        self.fired = False


class _Watchdog:
    """One thread interrupts every query that passes its deadline (a
    `threading.Timer` per query costs a thread start and stop, ~0.3 ms).
    `disarm` and the firing hold the same lock, so once `disarm` returns the
    alarm can no longer interrupt anything (the cursor may be running the
    thread's next query by then)."""

    COMPACT = 4096

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Alarm]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._disarmed = 0

    def arm(self, timeout: float, fn: Callable[[], Any]) -> _Alarm:
        alarm = _Alarm(fn)
        deadline = time.monotonic() + timeout
        with self._cv:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name="cairn-query-watchdog",
                                                daemon=True)
                self._thread.start()
            if self._disarmed > self.COMPACT and self._disarmed * 2 > len(self._heap):
                self._heap = [e for e in self._heap if e[2].fn is not None]
                heapq.heapify(self._heap)
                self._disarmed = 0
            wake = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, next(self._ids), alarm))
            if wake:
                self._cv.notify()
        return alarm

    def disarm(self, alarm: _Alarm) -> bool:
        """Stop the alarm; True if it had already fired."""
        with self._cv:
            if alarm.fn is not None:
                alarm.fn = None
                self._disarmed += 1
            return alarm.fired

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()

    def _loop(self) -> None:
        with self._cv:
            while not self._stopped:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, alarm = heapq.heappop(self._heap)
                    if alarm.fn is None:
                        self._disarmed = max(0, self._disarmed - 1)
                        continue
                    alarm.fired = True
                    fn, alarm.fn = alarm.fn, None
                    try:
                        fn()
                    except Exception:  # a cursor closed meanwhile
                        log.debug("query interrupt failed", exc_info=True)
                self._cv.wait(self._heap[0][0] - now if self._heap else None)


class Engine:
    def __init__(self, catalog: Catalog, data_dir: Path | str, cfg: Any) -> None:
        self.catalog = catalog
        self.data_dir = Path(data_dir).resolve()
        self.cfg = cfg
        self.files = FileStore(self.data_dir)
        limit = getattr(cfg, "duckdb_memory_limit", "1GB")
        threads = max(1, int(getattr(cfg, "duckdb_threads", 2)))
        self._con = sandbox.connect(self.data_dir, limit, threads)
        # Small queries (system tables, point lookups, key checks: at most
        # SMALL_QUERY_ROWS input rows) run on a second, single-threaded DuckDB,
        # locked down the same way: waking and joining DuckDB's worker threads
        # costs them more than the threads give (0.3-0.9 ms per query on two
        # busy cores). Its memory limit is a quarter of the configured one; a
        # query that runs out of it is run again on the main DuckDB.
        self._small = (
            sandbox.connect(self.data_dir, sandbox.fraction_of(limit, 4), 1)
            if threads > 1 else self._con
        )
        self._states: dict[str, TableState] = {}
        self._lock = threading.RLock()
        self._closed = False
        # Each thread keeps one cursor per DuckDB (a cursor per query cost
        # ~0.3 ms to make and close).
        self._local = threading.local()
        self._cursors: weakref.WeakSet[_Cursor] = weakref.WeakSet()
        self._watchdog = _Watchdog()
        # DuckDB queries run, by database ("small", "main"; a retry counts twice):
        # what shows that the fast paths (key checks, system tables) kept away.
        self.duckdb_runs: collections.Counter[str] = collections.Counter()
        self.file_ranges = keys.FileRanges()
        self.system_cache: dict[str, tuple[Any, pa.Table]] = {}
        self._records: dict[str, tuple[bytes, Table]] = {}
        # Every change of an archived namespace, in commit order (storage/archive).
        self.changes = change_log.ChangeLog(catalog)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._watchdog.stop()
                for c in list(self._cursors):
                    try:
                        c.cur.close()
                    except duckdb.Error:
                        pass
                self._con.close()
                if self._small is not self._con:
                    self._small.close()

    # --- tables in memory ------------------------------------------------

    def table(self, namespace: str, name: str) -> Table:
        """The table's record, or NOT_FOUND naming the namespace or the table.
        Decoded once per stored version (records are never changed in place)."""
        key = table_key(namespace, name)
        raw = self.catalog.get_raw(Table.FAMILY, key.encode())
        cached = self._records.get(key)
        if raw is not None and cached is not None and cached[0] == raw:
            return cached[1]
        rec = Table.loads(raw) if raw is not None else None
        if rec is not None:
            if len(self._records) > 10_000:
                self._records.clear()
            self._records[key] = (raw, rec)
        if rec is None:
            if namespace == "system":
                raise InvalidArgument("system tables are read-only")
            if self.catalog.get(Namespace, namespace) is None:
                raise NotFound(f"Namespace '{namespace}' does not exist")
            raise NotFound(f"Table '{namespace}.{name}' does not exist")
        return rec

    def state(self, namespace: str, name: str) -> TableState:
        return self._state_for(self.table(namespace, name))

    def _state_for(self, rec: Table) -> TableState:
        with self._lock:
            st = self._states.get(rec.uid)
            if st is None or st.table.schema_version != rec.schema_version:
                st = self._load(rec, st)
                self._states[rec.uid] = st
            return st

    def _load(self, rec: Table, old: TableState | None) -> TableState:
        sch = self.catalog.get(TableSchema, schema_key(rec.uid, rec.schema_version))
        if sch is None:
            raise NotFound(f"schema version {rec.schema_version} of {rec.namespace}.{rec.name} is missing")
        if old is not None:  # a schema change made elsewhere: keep locks and buffer
            with old.lock:
                old.table, old.schema = rec, sch
                old._cache.clear()
            return old
        files = self.catalog.scan(DataFile, rec.uid + SEP)
        batches = {}
        for key, value in self.catalog.scan_raw(family_name(rec.uid)):
            batches[key] = decode(key, value)
        append_only = self.catalog.get(Meta, APPEND_ONLY + rec.uid) is not None
        return TableState(rec, sch, files, batches, append_only)

    def forget(self, table_uid: str) -> None:
        """Drop the in-memory state of a table changed behind the engine's back
        (e.g. replaced by a restore); it is reloaded from the catalog on next use.
        If no Table record names this uid any more, statements still waiting on
        the old state fail with NOT_FOUND instead of writing into it."""
        with self._lock:
            st = self._states.pop(table_uid, None)
        if st is not None:
            current = self.catalog.get(Table, st.table.key())
            if current is None or current.uid != table_uid:
                with st.lock:
                    st.dropped = True
                    st.batches, st.files = {}, []
                    st._cache.clear()

    def tables_of(self, namespace: str) -> list[TableState]:
        """The in-memory states of a namespace's tables (a restore with `replace`
        holds their locks while it swaps the namespace)."""
        return self._all_states(namespace)

    def _all_states(self, namespace: str | None = None) -> list[TableState]:
        prefix = namespace + SEP if namespace else ""
        return [self._state_for(t) for t in self.catalog.scan(Table, prefix)]

    # --- DDL -------------------------------------------------------------

    def create_table(
        self,
        namespace: str,
        name: str,
        kind: str,
        columns: list[Any],
        options: dict[str, Any] | None = None,
        *,
        if_not_exists: bool = False,
    ) -> Table | None:
        """Create a table; None if it existed and `if_not_exists`."""
        if namespace == "system":
            raise InvalidArgument("namespace 'system' is reserved")
        if self.catalog.get(Namespace, namespace) is None:
            raise NotFound(f"Namespace '{namespace}' does not exist")
        cols, key = schema.new_columns(kind, list(columns))
        opts = schema.check_options(kind, dict(options or {}))
        with self._lock:
            if self.catalog.get(Table, table_key(namespace, name)) is not None:
                if if_not_exists:
                    return None
                raise AlreadyExists(f"Table '{namespace}.{name}' already exists")
            rec = Table(namespace, name, new_id("tbl"), kind, 1, key, opts)
            sch = TableSchema(rec.uid, 1, namespace, name, cols, rec.created_at)
            self.catalog.family(family_name(rec.uid))
            with self.changes.committing(namespace) as log_, self.catalog.atomic() as b:
                b.put(rec).put(sch).put(Meta(APPEND_ONLY + rec.uid, True))
                if log_ is not None:
                    log_.add(b, change_log.CREATE, name, change_log.ddl(table=rec, schema=sch))
            self._states[rec.uid] = TableState(rec, sch, [], {}, True)
        return rec

    def drop_table(self, namespace: str, name: str, *, if_exists: bool = False) -> bool:
        """Drop a table: its records go in one batch, then its buffer family, then
        its files (each as soon as no reader or backup pins it)."""
        try:
            st = self.state(namespace, name)
        except NotFound:
            if if_exists:
                return False
            raise
        with st.flush_lock, st.write_lock:
            if st.dropped:  # a concurrent DROP won
                if if_exists:
                    return False
                raise NotFound(f"Table '{namespace}.{name}' does not exist")
            paths = self._drop_records(st)
        self.files.retire(paths)
        self.file_ranges.forget(paths)
        return True

    def _drop_records(self, st: TableState) -> list[str]:
        uid = st.uid
        with st.lock:
            b = self.catalog.batch()
            b.delete(Table, st.table.key())
            for s in self.catalog.scan(TableSchema, uid + SEP):
                b.delete(TableSchema, s.key())
            for f in st.files:
                b.delete(DataFile, f.key())
            b.delete(Meta, APPEND_ONLY + uid)
            with self.changes.committing(st.table.namespace) as log_:
                if log_ is not None and not st.dropped:
                    log_.add(b, change_log.DROP, st.table.name, change_log.ddl(uid=uid))
                b.commit()
            paths = [f.path for f in st.files]
            st.files, st.batches, st.dropped = [], {}, True
            st._cache.clear()
        with self._lock:
            self._states.pop(uid, None)
        self.catalog.drop_family(family_name(uid))
        return paths

    def drop_namespace_tables(self, namespace: str) -> int:
        """DROP NAMESPACE CASCADE: drop every table of `namespace`."""
        n = 0
        for t in self.catalog.scan(Table, namespace + SEP):
            n += self.drop_table(t.namespace, t.name, if_exists=True)
        return n

    def table_count(self, namespace: str) -> int:
        return len(self.catalog.scan(Table, namespace + SEP))

    def list_tables(self, namespace: str | None = None) -> list[Table]:
        return self.catalog.scan(Table, namespace + SEP if namespace else "")

    def add_column(self, namespace: str, name: str, column: Any) -> TableSchema:
        return self._alter(namespace, name, lambda cur: schema.add_column(cur, column))

    def drop_column(self, namespace: str, name: str, column: str) -> TableSchema:
        return self._alter(namespace, name, lambda cur: schema.drop_column(cur, column))

    def _alter(self, namespace: str, name: str, change: Callable[[TableSchema], list]) -> TableSchema:
        st = self.state(namespace, name)
        with st.flush_lock, st.write_lock:
            if st.dropped:
                raise NotFound(f"Table '{namespace}.{name}' does not exist")
            cur = st.schema
            cols = change(cur)
            new = TableSchema(st.uid, cur.version + 1, namespace, name, cols)
            rec = Table(**{**st.table.__dict__, "schema_version": new.version})
            with st.lock, self.changes.committing(namespace) as log_:
                b = self.catalog.batch().put(rec).put(new)
                if log_ is not None:
                    log_.add(b, change_log.ALTER, name, change_log.ddl(table=rec, schema=new))
                b.commit()
                st.table, st.schema = rec, new
                st._cache.clear()
        return new

    def schemas(self, namespace: str, name: str) -> list[TableSchema]:
        """Every schema version of a table, oldest first."""
        rec = self.table(namespace, name)
        return self.catalog.scan(TableSchema, rec.uid + SEP)

    def stats(self, rec: Table) -> dict[str, int]:
        st = self._state_for(rec)
        with st.lock:
            return {
                "buffered_rows": st.buffered_rows(),
                "flushed_rows": sum(f.rows for f in st.files),
                "files": len(st.files),
                "bytes": sum(f.bytes for f in st.files),
            }

    # --- queries -----------------------------------------------------------

    def query(
        self,
        expression: exp.Expression,
        session_user: str | None,
        default_namespace: str | None,
        *,
        timeout: float | None = None,
        limits: ResultLimits | None = None,
        interrupt: Callable[[Callable[[], Any] | None], None] | None = None,
    ) -> pa.Table:
        """A SELECT (checked against the sandbox) as an Arrow table. Past
        `timeout` seconds DuckDB is interrupted and CANCELLED raised; past
        `limits` the answer is cut (see `ResultLimits`). `interrupt` is handed
        the running cursor's interrupt function while DuckDB runs (and None
        after), so a client can cancel the query."""
        sandbox.check_query(expression)
        return self.select(expression.copy(), session_user, default_namespace, timeout=timeout,
                           limits=limits, interrupt=interrupt)

    def select(
        self,
        expression: exp.Expression,
        user: str | None,
        default_namespace: str | None,
        *,
        show_deleted: bool | None = None,
        timeout: float | None = None,
        limits: ResultLimits | None = None,
        interrupt: Callable[[Callable[[], Any] | None], None] | None = None,
    ) -> pa.Table:
        """Run an already checked query tree (which this call may modify)."""
        system_table = self._system_table
        if limits is not None and limits.system_view is not None:
            view = limits.system_view

            def system_table(name: str) -> pa.Table | None:
                table = self._system_table(name)
                return None if table is None else view(name, table)

        whole = _whole_system_table(expression)
        if whole is not None:  # `SELECT * FROM system.x`: the table itself, no DuckDB
            table = system_table(whole)
            if table is None:
                raise NotFound(f"Table 'system.{whole}' does not exist")
            return limits.cut(table) if limits is not None else table
        plan = plan_query(
            expression, user, default_namespace, self.state, system_table, self.files,
            show_deleted=show_deleted, ranges=self.file_ranges,
        )
        if interrupt is None:
            return self._run(plan, timeout, limits)
        self._local.interrupt = interrupt  # read by _attempt, in this same thread
        try:
            return self._run(plan, timeout, limits)
        finally:
            self._local.interrupt = None

    @contextlib.contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """Every DuckDB query this thread runs inside the block (a SELECT, the
        SELECT of an INSERT ... SELECT, the row lookups of UPDATE and DELETE)
        is interrupted past `seconds` from now, and CANCELLED raised."""
        prev = getattr(self._local, "time_limit", None)
        self._local.time_limit = (time.monotonic() + seconds, seconds) if seconds else None
        try:
            yield
        finally:
            self._local.time_limit = prev

    def _system_table(self, name: str) -> pa.Table | None:
        return system_tables.build(self, name)

    def _cursor(self, small: bool) -> _Cursor:
        slot = "small" if small else "main"
        c: _Cursor | None = getattr(self._local, slot, None)
        if c is None:
            with self._lock:
                if self._closed:
                    raise Cancelled("the server is shutting down")
                c = _Cursor((self._small if small else self._con).cursor(), slot)
                self._cursors.add(c)
            setattr(self._local, slot, c)
        return c

    def _discard(self, c: _Cursor) -> None:
        """Drop a cursor that failed or was interrupted; the thread makes a new one."""
        if getattr(self._local, c.slot, None) is c:
            setattr(self._local, c.slot, None)
        with self._lock:
            self._cursors.discard(c)
        try:
            c.cur.close()
        except duckdb.Error:
            pass

    def _run(self, plan: Plan, timeout: float | None = None,
             limits: ResultLimits | None = None) -> pa.Table:
        """Run a plan: on the small DuckDB if it reads few rows, else the main
        one; DuckDB errors become Cairn errors."""
        deadline = time.monotonic() + timeout if timeout else None
        limit = getattr(self._local, "time_limit", None)
        if limit is not None and (deadline is None or limit[0] < deadline):
            deadline, timeout = limit
        small = self._small is not self._con and _is_small(plan)
        fired = [False]
        try:
            try:
                result = self._attempt(plan, deadline, small, fired, limits)
            except duckdb.OutOfMemoryException:
                if not small:
                    raise
                result = self._attempt(plan, deadline, False, fired, limits)
        except duckdb.InterruptException:
            if not fired[0]:
                raise Cancelled("query cancelled at the client's request") from None
            raise Cancelled(f"query cancelled: it ran longer than {timeout} s") from None
        except duckdb.PermissionException as exc:
            raise PermissionDenied(_clean(str(exc), plan)) from None
        except pa.ArrowException as exc:  # e.g. a value nested deeper than Arrow allows
            raise InvalidArgument(f"the answer cannot be returned: {exc}") from None
        except duckdb.Error as exc:
            if fired[0]:
                raise Cancelled(f"query cancelled: it ran longer than {timeout} s") from None
            raise InvalidArgument(_clean(str(exc), plan)) from None
        finally:
            release(plan, self.files)
        if limits is not None and limits.truncated(result):
            return ResultLimits.mark(mark_json(result, plan.json_names))
        return mark_json(result, plan.json_names)

    def _attempt(
        self, plan: Plan, deadline: float | None, small: bool, fired: list[bool],
        limits: ResultLimits | None = None,
    ) -> pa.Table:
        """One run on this thread's cursor of one DuckDB: the plan's Arrow
        tables are registered for this query only. A failed or interrupted
        query drops the cursor (the thread makes a new one)."""
        self.duckdb_runs["small" if small else "main"] += 1
        c = self._cursor(small)
        cur = c.cur
        sources = duck.Sources(cur)
        alarm = None
        clean = False
        try:
            sql = plan.sql
            for placeholder, table in sorted(plan.arrow, key=lambda a: a[0], reverse=True):
                name = sources.add(placeholder, table)
                if name != placeholder:
                    sql = sql.replace(f'"{placeholder}"', name).replace(placeholder, name)
                    plan.names[name] = plan.names.get(placeholder, "a table")
            if deadline is not None:
                alarm = self._watchdog.arm(max(0.0, deadline - time.monotonic()), cur.interrupt)
            interrupt = getattr(self._local, "interrupt", None)
            if interrupt is not None:
                interrupt(cur.interrupt)
            try:
                if not sql:
                    result = pa.table({})
                elif limits is None or not limits.bounded:
                    result = duck.fetch_arrow(cur, sql)
                else:
                    result, cut = duck.fetch_bounded(cur, sql, limits.max_rows, limits.max_bytes)
                    result = ResultLimits.mark(result) if cut else result
            finally:
                if interrupt is not None:
                    interrupt(None)
            if alarm is not None:
                fired[0] = self._watchdog.disarm(alarm)
                alarm = None
            sources.close()
            clean = not fired[0]
        finally:
            if alarm is not None:
                fired[0] = self._watchdog.disarm(alarm) or fired[0]
            if not clean:
                sources.handles.clear()
                self._discard(c)
        return result

    # --- writes ------------------------------------------------------------

    def execute(
        self, expression: exp.Expression, session_user: str | None, default_namespace: str | None
    ) -> int:
        """INSERT, UPDATE or DELETE; returns the number of rows affected."""
        if isinstance(expression, exp.Insert):
            return dml.insert(self, expression, session_user, default_namespace)
        if isinstance(expression, exp.Update):
            return dml.update(self, expression, session_user, default_namespace)
        if isinstance(expression, exp.Delete):
            return dml.delete(self, expression, session_user, default_namespace)
        raise PermissionDenied(f"{type(expression).__name__.upper()} is not allowed")

    insert = update = delete = execute

    def insert_arrow(
        self, namespace: str, name: str, rows: pa.Table, user: str | None = None
    ) -> int:
        """Bulk load rows given as Arrow (columns by name; types checked and cast)."""
        return dml.insert_arrow(self, self.state(namespace, name), rows, user)

    # --- flush and eviction ---------------------------------------------

    def flush_table(
        self, namespace: str, name: str, progress: Callable[..., Any] | None = None
    ) -> dict[str, int]:
        return flush.flush(self, self.state(namespace, name), progress)

    def tables_needing_flush(self) -> list[tuple[str, str]]:
        return flush.due(self, self._all_states())

    def evict_streams(self) -> int:
        """Drop stream rows past `ttl_seconds`; returns rows evicted."""
        return sum(flush.evict(self, st) for st in self._all_states() if st.table.table_type == "stream")

    def flush_rows_of(self, st: TableState) -> int:
        return int(st.table.options.get("flush_rows") or getattr(self.cfg, "flush_rows", 10_000))

    def flush_interval_of(self, st: TableState) -> float:
        return float(
            st.table.options.get("flush_interval_seconds")
            or getattr(self.cfg, "flush_interval_seconds", 300.0)
        )

    # --- files: pins, snapshots, recovery ----------------------------------

    def pin_files(self, file_records: list[DataFile] | list[str]) -> str:
        """Keep files from deletion until `unpin(token)` (a backup reading them)."""
        return self.files.pin([f if isinstance(f, str) else f.path for f in file_records])

    def unpin(self, token: str) -> None:
        self.files.unpin(token)

    def snapshot_namespace(self, namespace: str) -> NamespaceSnapshot:
        """Every table of `namespace` as of one instant: definitions, schema
        versions, file records (pinned) and buffered rows (Arrow, all users,
        soft-deleted included). Writers wait only while the table locks are
        held (a copy of references). Call `release_snapshot` when done."""
        while True:
            snap = self._capture(namespace)
            if snap is not None:
                return snap

    def _capture(self, namespace: str) -> NamespaceSnapshot | None:
        """One attempt at a snapshot; None if a table was created or dropped
        between listing the tables and taking their locks."""
        states = sorted(self._all_states(namespace), key=lambda s: s.uid)
        locks = [st.lock for st in states]
        captured = []
        for lk in locks:
            lk.acquire()
        try:
            # The namespace's commit lock (storage/archive/changes.py) makes the
            # snapshot a cut of its change log: exact to one lsn and instant.
            with self.changes.holding(namespace) as ns_state:
                live = {t.uid for t in self.catalog.scan(Table, namespace + SEP)}
                if live != {st.uid for st in states}:
                    return None
                cut_lsn, cut_us = self.changes.cut(ns_state)
            # Under the locks only references are copied (batches are immutable);
            # converting the buffer happens after, so writers wait microseconds.
            for st in states:
                batches = list(st.batches.values()) if st.table.table_type != "stream" else None
                cached = st._cache.get("*")
                captured.append((st.table, list(st.columns), st.schema.version, batches, cached,
                                 list(self.catalog.scan(TableSchema, st.uid + SEP)),
                                 list(st.files), st.loose_schema()))
            paths = [f.path for c in captured for f in c[6]]
            token = self.files.pin(paths)
        finally:
            for lk in reversed(locks):
                lk.release()
        tables = []
        for table, columns, version, batches, cached, schemas, files, schema in captured:
            buf = None
            if batches is not None:
                start, base = 0, schema.empty_table()
                keys = tuple(b.key for b in batches)
                if cached is not None and cached[0] == version and keys[: len(cached[1])] == cached[1]:
                    start, base = len(cached[1]), cached[2]
                parts = [conform(b.rows, b.version, table, columns).cast(schema)
                         for b in batches[start:]]
                buf = pa.concat_tables([base, *parts]) if parts else base
            tables.append(TableSnapshot(table, schemas, files, buf))
        return NamespaceSnapshot(namespace, tables, token, cut_lsn, cut_us)

    def release_snapshot(self, snap: NamespaceSnapshot) -> None:
        self.files.unpin(snap.pin_token)

    def retire_files(self, paths: list[str]) -> None:
        self.files.retire(paths)
        self.file_ranges.forget(paths)

    def recover(self) -> dict[str, int]:
        """Start-up: remove Parquet files no DataFile references (crash leftovers),
        everything in `tmp/`, and buffer families of tables that no longer exist."""
        referenced = {f.path for f in self.catalog.scan(DataFile)}
        removed = self.files.sweep(referenced)
        live = {t.uid for t in self.catalog.scan(Table)}
        dropped = 0
        for fam in self.catalog.families():
            if fam.startswith(PREFIX) and fam[len(PREFIX):] not in live:
                self.catalog.drop_family(fam)
                dropped += 1
        if removed or dropped:
            log.info("recovery removed %d stray files and %d buffer families", len(removed), dropped)
        return {"files_removed": len(removed), "families_dropped": dropped}


_SELECT_ARGS = frozenset({"expressions", "from", "from_"})


def _whole_system_table(e: exp.Expression) -> str | None:
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


def _clean(message: str, plan: Plan) -> str:
    """A DuckDB error as the user should read it: no internal view names."""
    for view, name in sorted(plan.names.items(), reverse=True):
        message = message.replace(view, name)
    return message.split("\n\nLINE")[0].strip()
