"""Table statements: CREATE / DROP / ALTER TABLE, SHOW TABLES, DESCRIBE TABLE,
FLUSH TABLE / FLUSH ALL TABLES IN, and the automatic flush loop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from catalog import Namespace
from catalog.errors import CairnError, InvalidArgument, NotFound
from sqlgrammar import to_sql
from sqlgrammar.ast import (
    AlterTableAddColumn,
    AlterTableDropColumn,
    CreateTable,
    DescribeTable,
    DropTable,
    FlushAllTables,
    FlushTable,
    ShowTables,
    TableRef,
    options_dict,
)
from storage import flush, system_tables
from storage.schema import describe_change
from storage.types import default_json, describe_column

from . import flush_jobs
from .dispatch import Routes
from .result import Result, cairn_type
from .state import Cairn, Session

routes = Routes()

log = logging.getLogger("cairn.tables")

AUTOFLUSH_PERIOD = 1.0
AUTOFLUSH_BACKOFF_MAX = 60.0  # seconds between tries of a table whose flush keeps failing


def resolve(session: Session, ref: TableRef) -> tuple[str, str]:
    ns = ref.namespace or session.namespace
    if not ns:
        raise InvalidArgument(f"no namespace given for table '{ref.name}'")
    return ns, ref.name


def require_namespace(cairn: Cairn, name: str) -> None:
    if cairn.catalog.get(Namespace, name) is None:
        raise NotFound(f"Namespace '{name}' does not exist")


@routes.handles(CreateTable, role="admin")
async def create_table(cairn: Cairn, session: Session, stmt: CreateTable) -> Result:
    ns, name = resolve(session, stmt.table)
    rec = await cairn.run(
        session.stoppable(cairn.engine.create_table), ns, name, stmt.kind, list(stmt.columns),
        options_dict(stmt.options), if_not_exists=stmt.if_not_exists,
    )
    if rec is None:
        return Result.of_message(f"Table '{ns}.{name}' already exists, skipped")
    return Result.of_message(f"{stmt.kind.upper()} table '{ns}.{name}' created")


@routes.handles(DropTable, role="admin")
async def drop_table(cairn: Cairn, session: Session, stmt: DropTable) -> Result:
    ns, name = resolve(session, stmt.table)
    dropped = await cairn.run(session.stoppable(cairn.engine.drop_table), ns, name,
                              if_exists=stmt.if_exists)
    if not dropped:
        return Result.of_message(f"Table '{ns}.{name}' does not exist, skipped")
    return Result.of_message(f"Table '{ns}.{name}' dropped")


@routes.handles(AlterTableAddColumn, role="admin")
async def add_column(cairn: Cairn, session: Session, stmt: AlterTableAddColumn) -> Result:
    return await _alter(cairn, session, stmt, cairn.engine.add_column, stmt.column,
                        stmt.column.name, "added", "already has a column",
                        if_not_exists=stmt.if_not_exists)


@routes.handles(AlterTableDropColumn, role="admin")
async def drop_column(cairn: Cairn, session: Session, stmt: AlterTableDropColumn) -> Result:
    return await _alter(cairn, session, stmt, cairn.engine.drop_column, stmt.column,
                        stmt.column, "dropped", "has no column", if_exists=stmt.column_if_exists)


async def _alter(cairn: Cairn, session: Session, stmt: AlterTableAddColumn | AlterTableDropColumn,
                 change: Any, column: Any, shown: str, done: str, unchanged: str,
                 **option: bool) -> Result:
    """One ALTER TABLE: `change` (the engine's) of `column`; with the table's
    IF EXISTS a missing table is skipped, and None from `change` (the
    column's IF [NOT] EXISTS) changed nothing."""
    ns, name = resolve(session, stmt.table)
    try:
        new = await cairn.run(session.stoppable(change), ns, name, column, **option)
    except NotFound:
        if not stmt.if_exists:
            raise
        return Result.of_message(f"Table '{ns}.{name}' does not exist, skipped")
    if new is None:
        return Result.of_message(f"Table '{ns}.{name}' {unchanged} '{shown}', skipped")
    return Result.of_message(
        f"Table '{ns}.{name}': column '{shown}' {done} (schema version {new.version})")


SHOW_TABLES = [("namespace", "TEXT"), ("table_name", "TEXT"), ("table_type", "TEXT"),
               ("schema_version", "BIGINT"), ("created_at", "TIMESTAMP")]  # fmt: skip


@routes.handles(ShowTables, role="user")
async def show_tables(cairn: Cairn, session: Session, stmt: ShowTables) -> Result:
    ns = stmt.namespace or session.namespace

    def work() -> Result:
        if ns is not None:
            require_namespace(cairn, ns)
        rows = [
            {"namespace": t.namespace, "table_name": t.name, "table_type": t.table_type,
             "schema_version": t.schema_version, "created_at": t.created_at}
            for t in cairn.engine.list_tables(ns)
        ]
        return Result.of_rows(SHOW_TABLES, rows)

    return await cairn.run(work)


DESCRIBE = [("column_name", "TEXT"), ("data_type", "TEXT"), ("not_null", "BOOLEAN"),
            ("primary_key", "BOOLEAN"), ("default_value", "JSON"), ("is_system", "BOOLEAN")]
HISTORY = [("version", "BIGINT"), ("created_at", "TIMESTAMP"), ("change", "TEXT"),
           ("columns", "JSON")]  # fmt: skip


@routes.handles(DescribeTable, role="user")
async def describe_table(cairn: Cairn, session: Session, stmt: DescribeTable) -> Result:
    ns, name = resolve(session, stmt.table)

    def work() -> Result:
        if ns == "system" and not stmt.history:
            return _describe_system(name)
        versions = cairn.engine.schemas(ns, name)
        if stmt.history:
            rows = []
            for i, s in enumerate(versions):
                prev = versions[i - 1] if i else None
                rows.append({"version": s.version, "created_at": s.created_at,
                             "change": describe_change(prev, s),
                             "columns": [describe_column(c) for c in s.columns]})
            return Result.of_rows(HISTORY, rows)
        current = versions[-1]
        rows = []
        for c in current.columns:
            d = describe_column(c)
            rows.append({"column_name": d["name"], "data_type": d["type"],
                         "not_null": d["not_null"], "primary_key": d["primary_key"],
                         "default_value": default_json(c), "is_system": d["system"]})
        return Result.of_rows(DESCRIBE, rows, message=f"schema version {current.version}")

    return await cairn.run(work)


def _describe_system(name: str) -> Result:
    schema = system_tables.schema_of(name) if name in system_tables.COLUMNS else None
    if schema is None:
        raise NotFound(f"Table 'system.{name}' does not exist")
    rows = [{"column_name": f.name, "data_type": cairn_type(f), "not_null": False,
             "primary_key": False, "default_value": "null", "is_system": True} for f in schema]
    return Result.of_rows(DESCRIBE, rows, message=f"system.{name} is read-only")


FLUSH = [("job_id", "TEXT"), ("namespace", "TEXT"), ("tables", "BIGINT"), ("rows", "BIGINT"),
         ("files", "BIGINT"), ("bytes", "BIGINT")]  # fmt: skip


def _flush_work(cairn: Cairn, tables: list[tuple[str, str]],
                own: tuple[str | None] | None = None) -> Any:
    """`own = (user,)`: a role-user's flush, which of a USER table weighs,
    writes and counts only their rows (flush.users_flush_due, flush.flush);
    `all_rows` in the result (admins only: server/visibility.py) keeps every
    row it flushed when that is more."""
    def work(ctx: Any) -> dict[str, Any]:
        total = {"tables": 0, "rows": 0, "files": 0, "bytes": 0}
        base = dict(total)
        all_rows = 0

        def progress(**kw: Any) -> None:
            # A flush knows the files it writes, not their bytes before it
            # writes them: its totals are what it has written (and the files
            # it will), its fraction the tables and this table's files done
            # (files_total and bytes_total stayed 0: "1 of 0 files").
            ctx.check_cancelled()
            done, files = kw.get("files_done") or 0, kw.get("files_total") or 0
            ctx.progress(
                files_done=base["files"] + done, files_total=base["files"] + max(done, files),
                bytes_done=base["bytes"] + (kw.get("bytes_done") or 0),
                bytes_total=base["bytes"] + (kw.get("bytes_done") or 0),
                rows=base["rows"] + (kw.get("rows") or 0),
                fraction=(i + (done / files if files else 0)) / len(tables),
            )

        dropped: list[str] = []
        held: list[str] = []  # a role-user's FLUSH of too few rows (flush.users_flush_due)
        flushed: list[str] = []  # installed: an error after says so (flush_jobs.partly)
        for i, (ns, name) in enumerate(tables):
            try:
                ctx.check_cancelled()
                if own is not None and not flush.users_flush_due(
                        cairn.engine.cfg, cairn.engine.tables.state(ns, name), own[0]):
                    held.append(f"{ns}.{name}")
                else:
                    out = cairn.engine.flush_table(ns, name, progress, own, flush_jobs.marking(
                        ctx, total, all_rows, i + 1, len(tables)))
                    ctx.land()  # its files are installed: its row says so (flush_jobs.py)
                    flushed.append(f"{ns}.{name}")
                    total["tables"] += 1
                    for k in ("rows", "files", "bytes"):
                        total[k] += out[k]
                    all_rows += out["all_rows"]
                    base.update(total)
                    ctx.fault("flush.after_install", table=f"{ns}.{name}")
            except NotFound:
                # Dropped meanwhile (a DROP TABLE waits for a running flush,
                # then takes the table's files, the flush's too): nothing flushed.
                dropped.append(f"{ns}.{name}")
            except Exception as exc:  # after some tables: it says which (was: not a word)
                error = flush_jobs.partly(exc, flushed, total, len(tables),
                                          cairn.config.data_dir)
                if error is exc:
                    raise
                raise error from exc
            ctx.progress(fraction=(i + 1) / len(tables), files_done=total["files"],
                         files_total=total["files"], bytes_done=total["bytes"],
                         bytes_total=total["bytes"], rows=total["rows"])
        result: dict[str, Any] = dict(total)
        if all_rows != total["rows"]:
            result["all_rows"] = all_rows
        if held:
            result["left_buffered"] = held
        return {**result, "dropped": dropped} if dropped else result

    return work


async def _run_flush(cairn: Cairn, session: Session, stmt: FlushTable | FlushAllTables, ns: str,
                     tables: list[tuple[str, str]], label: str | None) -> Result:
    own = None if session.is_admin else (session.user_id,)
    # The statement printed back from its parse: the text sent may hold a comment of any size.
    job = await cairn.jobs.run("flush", session, _flush_work(cairn, tables, own), namespace=ns,
                               statement=to_sql(stmt))
    res = dict(job.result or {})
    row = {"job_id": job.job_id, "namespace": ns, **res}
    what = f"table '{label}'" if label else f"{res.get('tables', 0)} table(s) in '{ns}'"
    message = f"Flushed {what}: {res.get('rows', 0)} rows to {res.get('files', 0)} file(s)"
    if label and res.get("dropped"):
        message = f"Table '{label}' was dropped while it was flushed: nothing left to flush"
    elif res.get("dropped"):
        message += f"; dropped meanwhile: {', '.join(res['dropped'])}"
    if label and res.get("left_buffered"):
        message = f"Nothing flushed: table '{label}' {HELD}"
    elif res.get("left_buffered"):
        message += f"; left buffered: {', '.join(res['left_buffered'])} ({HELD})"
    return Result.of_rows(FLUSH, [row], message=message)


HELD = (f"has too few buffered rows for a role-user's FLUSH to write a file (it writes "
        f"one once the buffer holds {flush.USER_FLUSH_SHARE:.0%} of the table's flush_rows "
        f"or flush_bytes, or a row {flush.USER_FLUSH_SHARE:.0%} of flush_interval_seconds "
        "old; of a USER table only the caller's own rows count and are written); its rows "
        "stay buffered, readable, and the table flushes them by itself")


@routes.handles(FlushTable, role="user")
async def flush_table(cairn: Cairn, session: Session, stmt: FlushTable) -> Result:
    ns, name = resolve(session, stmt.table)
    rec = await cairn.run(cairn.engine.table, ns, name)
    if rec.table_type == "stream":
        raise InvalidArgument(f"Table '{ns}.{name}' is a STREAM table: its rows are never flushed")
    return await _run_flush(cairn, session, stmt, ns, [(ns, name)], f"{ns}.{name}")


@routes.handles(FlushAllTables, role="user")
async def flush_all_tables(cairn: Cairn, session: Session, stmt: FlushAllTables) -> Result:
    ns = stmt.namespace
    await cairn.run(require_namespace, cairn, ns)
    tables = await cairn.run(cairn.engine.list_tables, ns)
    names = [(t.namespace, t.name) for t in tables if t.table_type != "stream"]
    return await _run_flush(cairn, session, stmt, ns, names, None)


async def autoflush_loop(cairn: Cairn) -> None:
    """Forever: evict expired stream rows, and flush tables whose buffer passed
    `flush_rows` or `flush_interval_seconds` (each flush a job). A table whose
    flush failed (a full disk) is tried again after 2, 4, 8, … seconds, at most
    AUTOFLUSH_BACKOFF_MAX apart, not every period."""
    running: set[tuple[str, str]] = set()
    tasks: set[asyncio.Task[Any]] = set()
    failing: dict[tuple[str, str], tuple[int, float]] = {}  # -> (failures, next try, monotonic)
    said: str | None = None  # the loop's own last error, said once

    async def one(ns: str, name: str) -> None:
        text = to_sql(FlushTable(TableRef(ns, name)))
        session = Session(user_id=None, namespace=ns, text=text)
        try:
            await cairn.jobs.run("flush", session, _flush_work(cairn, [(ns, name)]), namespace=ns,
                                 statement=text)
            failing.pop((ns, name), None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # logged in system.jobs; keep the loop alive
            failures = failing.get((ns, name), (0, 0.0))[0] + 1
            wait = min(AUTOFLUSH_BACKOFF_MAX, 2.0 ** failures)
            failing[(ns, name)] = (failures, time.monotonic() + wait)
            log.info("automatic flush of %s.%s failed (next try in %.0f s): %s",
                        ns, name, wait, exc.message if isinstance(exc, CairnError) else exc)
        finally:
            running.discard((ns, name))

    while True:
        await asyncio.sleep(AUTOFLUSH_PERIOD)
        try:
            if cairn.catalog.write_error is not None:  # what is kept in memory goes once it can
                await cairn.run(cairn.catalog.probe_writes)
            await cairn.run(cairn.engine.evict_streams)
            for ns, name in await cairn.run(cairn.engine.tables_needing_flush):
                if (ns, name) in running or failing.get((ns, name), (0, 0.0))[1] > time.monotonic():
                    continue
                running.add((ns, name))
                task = asyncio.create_task(one(ns, name))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        except CairnError as exc:  # a full disk: said once, not every period
            if exc.message != said:
                log.warning("automatic flush loop: %s", exc.message)
            said = exc.message
        except Exception:
            log.exception("automatic flush loop")
        else:
            said = None
