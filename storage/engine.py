"""The storage engine: tables, rows and queries over one catalog and one DuckDB.

Every method is synchronous and thread-safe; the server calls them through
`cairn.run` (its I/O thread pool). Per table, three locks in a fixed order:
`flush_lock` (one flush or DDL at a time) -> `write_lock` (one writing statement
at a time) -> `lock` (held for a few microseconds: a commit, or a query copying
the table's files and buffer); DDL also holds the registry's `ddl` lock, taken
between `write_lock` and `lock` (see registry.py). A query therefore always
sees each table as of one commit, and a writer is never held up by a running
query.

Which tables exist is the registry's (registry.py); a BACKUP's snapshot is
snapshot.py's, a RESTORE's install is install.py's; this class is their one
face, plus DuckDB."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from catalog import Catalog, DataFile, Table, TableSchema
from catalog.errors import Cancelled, InvalidArgument, NotFound, PermissionDenied, Unavailable

from . import (
    allocator,
    bufstore,
    direct,
    dml,
    duck,
    duckrestart,
    flush,
    install,
    install_all,
    sandbox,
    schema,
    snapshot,
    stopping,
    system_tables,
    timing,
)
from .archive import changes as change_log
from .buffer import TableState
from .config import EngineConfig
from .duckrestart import DuckDBs, Rebuilt
from .files import FileStore, damaged_tables
from .json_columns import mark as mark_json
from .keys import FileRanges
from .limits import WRITE_BYTES, WRITE_LIMITS, ResultLimits, SystemView, wide
from .pointcache import PointCache
from .query import Plan, plan_query, release
from .query_errors import check_files, clean, query_failed
from .registry import Registry
from .resolve import written
from .watchdog import Watchdog
from .work import Work

log = logging.getLogger("cairn.storage")

SMALL_QUERY_ROWS = 100_000  # input rows (files + buffers + system tables) of a "small" query
SMALL_JOIN_ROWS = 10_000  # the same, for a query that joins (its output can be far larger)


def _is_small(plan: Plan) -> bool:
    """Does the plan go to the single-threaded DuckDB? Only if it reads few
    rows and can make few: no table function, and a join only of small tables."""
    if plan.table_function:
        return False
    return plan.rows <= (SMALL_QUERY_ROWS if plan.refs <= 1 else SMALL_JOIN_ROWS)


class Engine:
    def __init__(self, catalog: Catalog, data_dir: Path | str, cfg: EngineConfig) -> None:
        self.catalog = catalog
        self.data_dir = Path(data_dir).resolve()
        self.cfg = cfg
        self.files = FileStore(self.data_dir)
        self.file_ranges = FileRanges()
        self.points = PointCache(int(getattr(cfg, "point_cache_mb", 32)) << 20)
        # Every change of an archived namespace, in commit order (storage/archive).
        self.changes = change_log.ChangeLog(catalog)
        self.tables = Registry(catalog, self.files, self.file_ranges, self.changes)
        if cfg.duckdb_release_memory:
            allocator.fix_malloc_thresholds()
        limit, threads = cfg.duckdb_memory_limit, max(1, int(cfg.duckdb_threads))
        spill = str(getattr(cfg, "duckdb_spill_limit", "0"))
        main = Rebuilt("main", lambda gen: sandbox.connect(self.data_dir, limit, threads, spill, gen))
        # Small queries (system tables, point lookups, key checks: at most
        # SMALL_QUERY_ROWS input rows) run on a second, single-threaded DuckDB,
        # locked down the same way: waking and joining DuckDB's worker threads
        # costs them more than the threads give (0.3-0.9 ms per query on two
        # busy cores). Its memory limit is a quarter of the configured one; a
        # query that runs out of it is run again on the main DuckDB (it never
        # spills: the main one does). Either is rebuilt if a statement
        # invalidates it (storage/duckrestart.py).
        self.duckdbs = DuckDBs(main, Rebuilt("small", lambda gen: sandbox.connect(
            self.data_dir, sandbox.fraction_of(limit, 4), 1), lazy=True) if threads > 1 else None)
        duckrestart.server_path(self.data_dir)
        self._local = threading.local()
        self.watchdog = Watchdog()  # every query's timeout (the pgwire catalog's too)
        # DuckDB queries run, by database ("small", "main"; a retry counts twice):
        # what shows that the fast paths (key checks, system tables) kept away.
        self.duckdb_runs: collections.Counter[str] = collections.Counter()
        self.system_cache: dict[str, tuple[Any, pa.Table]] = {}

    def close(self) -> None:
        if self.duckdbs.close():
            self.watchdog.stop()

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The main DuckDB's connection as it is now."""
        return self.duckdbs.main.con

    # --- namespaces and tables (registry.py) -------------------------------

    def table(self, namespace: str, name: str) -> Table:
        """The table's record, or NOT_FOUND naming the namespace or the table."""
        return self.tables.table(namespace, name)

    def state(self, namespace: str, name: str) -> TableState:
        return self.tables.state(namespace, name)

    def forget(self, table_uid: str) -> None:
        self.tables.forget(table_uid)

    def tables_of(self, namespace: str) -> list[TableState]:
        return self.tables.states(namespace)

    def create_namespace(self, name: str, *, if_not_exists: bool = False) -> bool:
        return self.tables.create_namespace(name, if_not_exists=if_not_exists)

    def drop_namespace(self, name: str, *, cascade: bool = False, if_exists: bool = False) -> bool:
        return self.tables.drop_namespace(name, cascade=cascade, if_exists=if_exists)

    def create_table(self, namespace: str, name: str, kind: str, columns: list[Any],
                     options: dict[str, Any] | None = None, *,
                     if_not_exists: bool = False) -> Table | None:
        """Create a table; None if it existed and `if_not_exists`."""
        return self.tables.create_table(namespace, name, kind, columns, options,
                                        if_not_exists=if_not_exists)

    def drop_table(self, namespace: str, name: str, *, if_exists: bool = False) -> bool:
        return self.tables.drop_table(namespace, name, if_exists=if_exists)

    def drop_namespace_tables(self, namespace: str) -> int:
        """Drop every table of `namespace` (the namespace stays)."""
        n = 0
        for t in self.tables.list_tables(namespace):
            n += self.drop_table(t.namespace, t.name, if_exists=True)
        return n

    def table_count(self, namespace: str) -> int:
        return len(self.tables.list_tables(namespace))

    def list_tables(self, namespace: str | None = None) -> list[Table]:
        return self.tables.list_tables(namespace)

    def add_column(self, namespace: str, name: str, column: Any, *,
                   if_not_exists: bool = False) -> TableSchema | None:
        """The table's new schema; None if it had the column and `if_not_exists`."""
        return self.tables.alter(namespace, name, lambda cur: schema.add_column(
            cur, column, if_not_exists=if_not_exists))

    def drop_column(self, namespace: str, name: str, column: str, *,
                    if_exists: bool = False) -> TableSchema | None:
        """The table's new schema; None if it had no such column and `if_exists`."""
        return self.tables.alter(namespace, name, lambda cur: schema.drop_column(
            cur, column, if_exists=if_exists))

    def schemas(self, namespace: str, name: str) -> list[TableSchema]:
        """Every schema version of a table, oldest first (Registry.schemas_named)."""
        return self.tables.schemas_named(namespace, name)

    def stats(self, rec: Table) -> dict[str, int]:
        """The counts of the table `rec` names; NotFound once it is dropped or
        replaced (its state is emptied then: never read as 0 rows)."""
        st = self.tables.state_for(rec)
        with st.lock:
            if st.dropped:
                raise NotFound(f"Table '{rec.namespace}.{rec.name}' does not exist")
            return {
                "buffered_rows": st.buffered_rows(),
                "flushed_rows": sum(f.rows for f in st.files),
                "files": len(st.files),
                "bytes": sum(f.bytes for f in st.files),
            }

    # --- queries -----------------------------------------------------------

    def _direct(self, expression: exp.Expression, node: exp.Table, snap: Any,
                point: dict[str, Any] | None) -> pa.Table | None:
        """A point lookup off the snapshot, or off its files' cached tables (direct.py)."""
        return direct.answer(expression, node, snap, point, lambda s, p, n: direct.from_files(
            s, p, n, self.points, self.files.abs, timing.waiting_allowed()))

    def query(
        self,
        expression: exp.Expression,
        session_user: str | None,
        default_namespace: str | None,
        *,
        timeout: float | None = None, limits: ResultLimits | None = None,
        interrupt: Callable[[Callable[[], Any] | None], None] | None = None,
        owned: bool = False, small: bool = False,
    ) -> pa.Table:
        """A SELECT (checked against the sandbox) as an Arrow table. Past `timeout`
        seconds DuckDB is interrupted and CANCELLED raised; past `limits` the answer
        is cut (`ResultLimits`). `interrupt` gets the running cursor's interrupt
        function while DuckDB runs (None after). `owned`: no copy, rewrite it.
        `small`: a fast-path tree (`Query.small`, see `sandbox.check_query`)."""
        sandbox.check_query(expression, small)
        return self.select(expression if owned else expression.copy(), session_user,
                           default_namespace, timeout=timeout, limits=limits, interrupt=interrupt)

    def select(
        self,
        expression: exp.Expression,
        user: str | None,
        default_namespace: str | None,
        *,
        show_deleted: bool | None = None, timeout: float | None = None,
        limits: ResultLimits | None = None, one_thread: bool = False,
        interrupt: Callable[[Callable[[], Any] | None], None] | None = None,
    ) -> pa.Table:
        """Run an already checked query tree (which this call may modify). `one_thread`: run_plan.
        A write's query holds its rows whole: past WRITE_BYTES INVALID_ARGUMENT, not 3 GB."""
        if limits is None and getattr(self._local, "writing", False):
            limits = WRITE_LIMITS
        table = self._select(expression, user, default_namespace, show_deleted, timeout, limits,
                             one_thread, interrupt)
        if limits is WRITE_LIMITS and ResultLimits.truncated(table):
            raise InvalidArgument(f"a write reads at most {WRITE_BYTES >> 20} MiB of rows at once "
                                  "(INSERT … SELECT, an UPDATE's rows): write it in parts")
        return table

    def _select(self, expression: exp.Expression, user: str | None, default_namespace: str | None,
                show_deleted: bool | None, timeout: float | None, limits: ResultLimits | None,
                one_thread: bool, interrupt: Callable[[Callable[[], Any] | None], None] | None,
                ) -> pa.Table:
        system_table = self._system_table
        view = limits.system_view if limits is not None else None
        if (view := view or getattr(self._local, "system_view", None)) is not None:

            def system_table(name: str) -> pa.Table | None:
                table = self._system_table(name)
                return None if table is None else view(name, table)

        whole = system_tables.whole_system_table(expression)
        if whole is not None:  # `SELECT * FROM system.x`: the table itself, no DuckDB
            table = system_table(whole)
            if table is None:
                raise NotFound(f"Table 'system.{whole}' does not exist")
            return limits.cut(table) if limits is not None else table
        plan = plan_query(
            expression, user, default_namespace, self.state, system_table, self.files,
            show_deleted=show_deleted, ranges=self.file_ranges,
            direct=self._direct, frozen=lambda: timing.taking(self.tables.ddl, "ddl"),
        )
        one_thread = one_thread or wide(plan, int(getattr(self.cfg, "duckdb_wide_row_bytes", 0) or 0))
        if interrupt is None:
            return self.run_plan(plan, timeout, limits, one_thread)
        self._local.interrupt = interrupt  # read by _attempt, in this same thread
        try:
            return self.run_plan(plan, timeout, limits, one_thread)
        finally:
            self._local.interrupt = None

    @contextlib.contextmanager
    def time_limit(self, seconds: float | None, until: float | None = None) -> Iterator[None]:
        """Every DuckDB query this thread runs inside the block (a SELECT, the
        SELECT of an INSERT ... SELECT, the row lookups of UPDATE and DELETE)
        is interrupted past `seconds` from now (at monotonic `until`, if given:
        a statement's `seconds` counted from its start), and CANCELLED raised;
        a write's work in Python stops there too, before its commit
        (`stopping.check`). An enclosing block's earlier end stays."""
        end = (until if until is not None else time.monotonic() + seconds) if seconds else None
        prev = stopping.time_limit()
        if end is None or seconds is None or prev is not None and prev[0] <= end:
            yield  # none, or the enclosing block's
            return
        with stopping.limited(end, seconds):
            yield

    def _system_table(self, name: str) -> pa.Table | None:
        return system_tables.build(self, name)

    def run_plan(self, plan: Plan, timeout: float | None = None,
                 limits: ResultLimits | None = None, one_thread: bool = False) -> pa.Table:
        """Run a plan on the small DuckDB if it reads few rows or `one_thread`, else the main one."""
        if plan.answer is None and not timing.waiting_allowed():  # e.g. an exact key check
            release(plan, self.files)
            raise timing.WouldWait("DuckDB")
        deadline, timeout = stopping.deadline(timeout)
        small = self.duckdbs.small is not self.duckdbs.main and (one_thread or _is_small(plan))
        fired = [False]
        if small and plan.answer is None:
            self.duckdbs.cursor(True)  # opened by its first query: not this query's memory
        mark = allocator.thread_allocated()  # the small DuckDB allocates on this thread only
        try:
            try:
                if plan.answer is not None:  # read off the snapshot (storage/direct.py)
                    result = plan.answer if limits is None else limits.cut(plan.answer)
                else:
                    check_files(plan, self.files.abs)  # no FIFO to wait on for ever
                    result = self._attempt(plan, deadline, small, fired, limits)
            except duckdb.OutOfMemoryException:
                if not small:
                    raise
                small = False
                result = self._attempt(plan, deadline, False, fired, limits)
        except duckdb.InterruptException:
            if not fired[0]:
                raise Cancelled("query cancelled at the client's request") from None
            raise stopping.overdue(timeout) from None
        except duckdb.PermissionException as exc:
            raise PermissionDenied(clean(str(exc), plan)) from None
        except pa.ArrowException as exc:  # e.g. a value nested deeper than Arrow allows
            raise InvalidArgument(f"the answer cannot be returned: {exc}") from None
        except duckdb.Error as exc:
            if fired[0]:
                raise stopping.overdue(timeout) from None
            raise query_failed(exc, plan, self.files.abs) from None
        finally:
            release(plan, self.files)
            if self.cfg.duckdb_release_memory and (
                    one_thread or not small
                    or allocator.thread_allocated() - mark >= allocator.PURGE_AFTER_BYTES):
                allocator.purge()
        cut = limits is not None and limits.truncated(result)
        result = mark_json(result, plan.json_names, plan.json_columns, plan.json_guessed)
        return ResultLimits.mark(result) if cut else result

    def _attempt(
        self, plan: Plan, deadline: float | None, small: bool, fired: list[bool],
        limits: ResultLimits | None = None,
    ) -> pa.Table:
        """One run on this thread's cursor of one DuckDB, the plan's Arrow tables
        registered for it alone; a failed or interrupted query drops the cursor."""
        self.duckdb_runs["small" if small else "main"] += 1
        c = self.duckdbs.cursor(small)
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
                alarm = self.watchdog.arm(max(0.0, deadline - time.monotonic()), cur.interrupt)
            interrupt = getattr(self._local, "interrupt", None) or stopping.target()
            if interrupt is not None:
                interrupt(cur.interrupt)
            try:
                kinds: list[Any] = []  # DuckDB's types of the answer, as the run says them
                if not sql:
                    result = pa.table({})
                elif limits is None or not limits.bounded:
                    result = duck.fetch_arrow(cur, sql, kinds)
                else:
                    result, cut = duck.fetch_bounded(cur, sql, limits.max_rows, limits.max_bytes,
                                                     kinds)
                    result = ResultLimits.mark(result) if cut else result
                result = duck.checked(cur, sql, result, kinds)
            finally:
                if interrupt is not None:
                    interrupt(None)
            if alarm is not None:
                fired[0] = self.watchdog.disarm(alarm)
                alarm = None
            sources.close()
            clean = not fired[0]
        except duckdb.Error as exc:  # an internal error: a fresh DuckDB (duckrestart.py)
            self.duckdbs.failed(c, exc, "a write's query" if getattr(
                self._local, "writing", False) else f"a query ({type(plan.tree).__name__})")
            raise
        finally:
            if alarm is not None:
                fired[0] = self.watchdog.disarm(alarm) or fired[0]
            if not clean:
                sources.handles.clear()
                self.duckdbs.discard(c)
        return result

    # --- writes ------------------------------------------------------------

    def execute(self, expression: exp.Expression, session_user: str | None,
                default_namespace: str | None, system_view: SystemView | None = None) -> int:
        """INSERT, UPDATE or DELETE; the rows affected. Its queries see system
        tables through `system_view` (a role-user's INSERT … SELECT read every job)."""
        self._local.system_view = system_view  # read by select, in this same thread
        self._local.writing = True
        try:
            if isinstance(expression, exp.Insert):
                return written(lambda: dml.insert(self, expression, session_user, default_namespace))
            if not isinstance(expression, exp.Update | exp.Delete):
                raise PermissionDenied(f"{type(expression).__name__.upper()} is not allowed")
            run = dml.update if isinstance(expression, exp.Update) else dml.delete
            return written(lambda: run(self, expression, session_user, default_namespace))  # type: ignore[arg-type]
        finally:  # UPDATE's, DELETE's rows were found, copied, encoded after the query's purge
            self._local.system_view, self._local.writing = None, False
            if self.cfg.duckdb_release_memory and not isinstance(expression, exp.Insert):
                allocator.purge()

    def insert_arrow(self, namespace: str, name: str, rows: pa.Table,
                     user: str | None = None) -> int:
        """Bulk load rows given as Arrow (columns by name; types checked and cast)."""
        return written(lambda: dml.insert_arrow(self, self.state(namespace, name), rows, user))

    # --- flush and eviction ---------------------------------------------

    def flush_table(self, namespace: str, name: str, progress: Callable[..., Any] | None = None,
                    own: tuple[str | None] | None = None, on_install: Any = None) -> dict[str, int]:
        """`own = (user,)`: only `user`'s rows of a USER table; `on_install`: flush.flush.
        A table a RESTORE ... replace swapped as the flush waited: the new one."""
        for _ in range(8):
            st = self.state(namespace, name)
            try:
                out = flush.flush(self.catalog, self.files, st, progress, self.file_ranges.filters, own, on_install)
                flush.tidy(self.catalog, st, out, self.cfg.duckdb_release_memory)  # NotFound: dropped
            except NotFound:
                if st.dropped and self.table(namespace, name).uid != st.uid:
                    continue  # (NotFound when the name is gone: dropped, as before)
                raise
            return out
        raise Unavailable(f"Table '{namespace}.{name}' kept being replaced while it was "
                          "flushed (a restore or DDL in a loop): run it again")

    def tables_needing_flush(self) -> list[tuple[str, str]]:
        return flush.due(self.cfg, self.tables.healthy_states())

    def evict_streams(self) -> int:
        """Drop stream rows past `ttl_seconds`; returns rows evicted."""
        return sum(flush.evict(self.catalog, st) for st in self.tables.healthy_states()
                   if st.table.table_type == "stream")

    def flush_rows_of(self, st: TableState) -> int:
        return flush.flush_rows_of(self.cfg, st)

    def flush_interval_of(self, st: TableState) -> float:
        return flush.flush_interval_of(self.cfg, st)

    # --- files: pins, backups, restores, recovery ----------------------------

    def pin_files(self, file_records: list[DataFile] | list[str]) -> str:
        """Keep files from deletion until `unpin(token)` (a backup reading them)."""
        return self.files.pin([f if isinstance(f, str) else f.path for f in file_records])

    def unpin(self, token: str) -> None:
        self.files.unpin(token)

    def snapshot(self, scope: snapshot.Scope, defer_export: bool = False,
                 floor_us: int = 0) -> snapshot.Snapshot:
        """Every table in `scope` (namespace -> table names, or None for all) as
        of one instant, every file ready to store: flushed files pinned, buffered
        rows (all users, soft-deleted included) exported as Parquet (when
        `defer_export`, by each image's `export_buffers`, which a BACKUP runs in
        its job process). Writers wait only while references are copied.
        Release it when done (`with`). Its time is after `floor_us`."""
        return snapshot.take(self.tables, scope, self.data_dir / "tmp", defer_export, floor_us)

    def restore(self, restore: install.Restore, fetch: install.Fetch, work: Work,
                spent: Callable[[int], None] | None = None) -> None:
        """Fetch every file of a decoded backup into place and install it as
        `restore.destination` in one catalog batch (see install.py)."""
        with allocator.purged_after():
            install.run(self.tables, restore, fetch, work, spent)

    def restore_all(self, restores: list[install.Restore], fetch: install.Fetch, work: Work,
                    spent: Callable[[int], None] | None = None) -> None:
        """Several decoded backups (a backup set) installed together, in one
        catalog batch, or none of them (see install_all.py)."""
        with allocator.purged_after():
            install_all.run_many(self.tables, restores, fetch, work, spent)

    def retire_files(self, paths: list[str]) -> None:
        self.tables.retire(paths)

    def recover(self) -> dict[str, int]:
        """Start-up: remove Parquet files no DataFile references (crash leftovers),
        everything in `tmp/`, and the buffers of tables that no longer exist."""
        records = self.catalog.scan(DataFile)
        removed = self.files.sweep({f.path for f in records}, damaged_tables(records))
        dropped = bufstore.sweep(self.catalog, {t.uid for t in self.catalog.scan(Table)})
        if removed or dropped:
            log.info("recovery removed %d stray files and %d tables' buffers", len(removed), dropped)
        return {"files_removed": len(removed), "buffers_dropped": dropped}
