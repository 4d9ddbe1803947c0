"""Catalog queries: what psql's `\\d` family, GUI clients and drivers ask of
`pg_catalog` and `information_schema`, answered from Cairn's catalog.

A query that reads only catalog relations (or only calls session functions
like `version()`) is parsed with sqlglot's PostgreSQL dialect; each catalog
relation it names is replaced by an Arrow table built from Cairn's catalog
(relations.py), PostgreSQL-only functions by their values, and the result is
run on a DuckDB of its own that holds no data and can reach no file or network
(external access off, configuration locked). A query that still fails there
(a relation or function Cairn does not model) is answered with no rows, with
the column names it asked for: clients read that as "nothing of that kind"."""

from __future__ import annotations

import itertools
import logging
import re
import time
from typing import Any, cast

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from catalog.errors import Cancelled, InvalidArgument, PermissionDenied
from sqlgrammar.factorial import standalone_bang
from sqlgrammar.uncommented import Uncommented
from storage import lambda_guard, stopping, unstoppable, value_bounds
from storage.duck import fetch_bounded, refuse_time_with_zone
from storage.duckrestart import Rebuilt, fault_of, invalidating, scrubbed
from storage.names import fold, function_name
from storage.sandbox import DENIED_NODES, cte_references, denied_function, in_utc, scratch_config

from ..result import cairn_type
from ..state import Cairn
from . import arrays, keywords, regtypes, relations, results
from . import types as t
from .catalog_tree import USER_WORDS, denied_table_function, func_name, named, shown, unqualified
from .session_functions import FUNCTIONS, VISIBLE, SessionInfo, lit

log = logging.getLogger("cairn.pgwire")


# The lookahead (each alternative's first letter) lets a position be refused in
# one step: a 2 MB INSERT was scanned in 1.5-3 s on the event loop, now ~0.1-0.3 s.
_HINT = re.compile(
    r"(?=[pivcshof:])(?:pg_|information_schema|version\s*\(|current_(schema|database|user|setting|role)"
    r"|session_user|set_config|has_\w+_privilege|obj_description|format_type|inet_server"
    r"|::\s*reg(class|type|proc|namespace|role)\b)",
    re.IGNORECASE)
_OPERATOR = re.compile(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!=<>*]+)\s*\)", re.IGNORECASE)
_COLLATE = re.compile(r"COLLATE\s+(pg_catalog\s*\.\s*)?\"?(default|C|POSIX)\"?", re.IGNORECASE)
_PG_TYPE_CAST = re.compile(r"::\s*pg_catalog\s*\.\s*", re.IGNORECASE)
# `CAST(x AS pg_catalog.text)` (psql's \dT+, \dD, \dC): sqlglot read it as a type
# of its own, DuckDB knew none, and the query was answered with no rows
_PG_TYPE_AS = re.compile(r"\bAS\s+pg_catalog\s*\.\s*(?=[A-Za-z_\"])", re.IGNORECASE)
# sqlglot's PostgreSQL dialect cannot read `oid[]` (asyncpg's type look-up: `any($1::oid[])`)
_OID_ARRAY = re.compile(r"::\s*oid\s*\[\s*\]", re.IGNORECASE)

_OID_TYPES = {"regclass", "regtype", "regproc", "regprocedure", "regnamespace", "regrole",
              "oid", "xid", "cid", "tid", "regoper"}
_TEXT_TYPES = {"name", "char", "bpchar", "text", "varchar"}
# (sqlglot reads PostgreSQL's unnest() as its `explode`)
_ALLOWED_TABLE_FUNCTIONS = {"unnest", "explode", "generate_series", "range",
                            "generate_subscripts", "pg_get_keywords"}
KEYWORDS = "pg_get_keywords"  # keywords.py


def _prepare(sql: str) -> str:
    sql = _OPERATOR.sub(r" \1 ", sql)
    sql = _COLLATE.sub(" ", sql)
    sql = _PG_TYPE_AS.sub("AS ", _PG_TYPE_CAST.sub("::", sql))
    return _OID_ARRAY.sub("::BIGINT[]", sql)


def _catalog_table(table: exp.Table) -> tuple[str, str] | None:
    """('pg', name) / ('info', name) for a catalog relation, else None."""
    db, name = fold(table.db or ""), fold(table.name or "")
    if table.catalog:
        return None
    if db == "information_schema" and name in relations.INFORMATION_SCHEMA:
        return "info", name
    if db == "pg_catalog" or (not db and name.startswith("pg_")):
        return "pg", name
    if db == "information_schema":
        return "info", name
    return None


def hinted(code: str) -> bool:
    """Whether `code` (a statement with comments blanked) may be a catalog
    query: `parse` is sqlglot, worth a thread for a big text, and a word in a
    comment is no reason for it."""
    return _HINT.search(code) is not None


def parse(sql: str, comments: tuple[tuple[int, int], ...] = ()) -> exp.Expression | None:
    """The query's tree if it is a catalog query, else None (Cairn runs it).
    `comments` (the splitter's runs of comments) are read as one space each,
    as the SQL parser reads them (sqlglot held the GIL over every one)."""
    sql = Uncommented(sql, comments).text
    if not _HINT.search(sql):
        return None
    try:
        if standalone_bang(sql) is not None:  # sqlglot's NOT, DuckDB's factorial:
            return None  # the SQL parser refuses it
        trees = [e for e in sqlglot.parse(_prepare(sql), read="postgres") if e is not None]
    except (SqlglotError, RecursionError):
        return None
    if len(trees) != 1 or not isinstance(trees[0], exp.Query):
        return None
    tree: Any = trees[0]
    ctes = cte_references(tree)
    catalog = False
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Func) or id(table) in ctes:
            catalog |= isinstance(table.this, exp.Func) and func_name(table.this) == KEYWORDS
            continue
        if _catalog_table(table) is None:
            return None  # names a Cairn table: not ours
        catalog = True
    if catalog:
        return tree
    names = {func_name(f) for f in tree.find_all(exp.Func)}
    if names & set(FUNCTIONS) or any(
            type(n).__name__ in ("CurrentUser", "SessionUser")
            or (isinstance(n, exp.DataType) and n.sql("postgres").lower() in _OID_TYPES)
            for n in tree.walk()):
        return tree
    return None


CATALOG_MEMORY = "256MB"


def _connect(generation: int = 0) -> duckdb.DuckDBPyConnection:
    # Its own memory limit: a query that names version() runs here, and
    # may compute anything besides (DuckDB's default is 80% of the RAM).
    con = duckdb.connect(":memory:", config={**scratch_config(), "memory_limit": CATALOG_MEMORY})
    con.execute("SET python_enable_replacements = false")
    in_utc(con)
    unstoppable.define(con)  # jaro_similarity & co. past the timeout: refused when reached
    lambda_guard.define(con)  # ... and in a lambda, over all of a row's elements
    for setting in ("autoinstall_known_extensions = false", "autoload_known_extensions = false",
                    "enable_external_access = false", "lock_configuration = true"):
        con.execute(f"SET {setting}")
    return con


# A catalog query that ran and failed on a value ('x'::INT, an overflow, error())
# is refused as any query is (22023), not answered with no rows.
DATA_ERRORS = (duckdb.ConversionException, duckdb.OutOfRangeException,
               duckdb.InvalidInputException)


class CatalogEngine:
    """The catalog's own DuckDB (no data, no files, no network)."""

    def __init__(self) -> None:
        # Rebuilt if a query makes it fail internally (storage/duckrestart.py).
        self._db = Rebuilt("catalog", _connect)
        self._names = itertools.count()

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        return self._db.con

    def close(self) -> None:
        self._db.close()

    def run(self, cairn: Cairn, tree: exp.Expression, info: SessionInfo,
            timeout: float | None = None) -> tuple[list[tuple[str, int]], list[list[Any]]]:
        """(columns as (name, oid), rows) of a catalog query (blocking), as an
        ordinary SELECT's query: past `timeout` seconds (or this thread's
        `Engine.time_limit`) CANCELLED, and stopped by a cancel of its
        statement (storage/stopping.py)."""
        tree = named(tree.copy())
        info.pending.clear()
        try:
            return self._run(cairn, tree, info, timeout)
        except DATA_ERRORS as exc:  # the query ran and failed on a value: as any query's
            info.pending.clear()
            raise InvalidArgument(scrubbed(str(exc)).split("\n\nLINE")[0].strip()) from None
        except (duckdb.Error, SqlglotError, ValueError, TypeError, AttributeError, IndexError,
                KeyError, RecursionError) as exc:
            log.debug("catalog query answered empty: %s", exc)
            info.pending.clear()  # it did not run: set_config() set nothing
            return _empty_answer(tree), []

    def _run(self, cairn: Cairn, tree: exp.Expression, info: SessionInfo, timeout: float | None
             ) -> tuple[list[tuple[str, int]], list[list[Any]]]:
        for node in tree.walk():
            if isinstance(node, DENIED_NODES):
                raise ValueError("not a query")
        # FROM f() and LATERAL f(): a denied one is refused wherever it stands
        functions = [n.this for n in tree.find_all(exp.Table, exp.Lateral)
                     if isinstance(n.this, exp.Func)]
        for function in functions:
            denied_table_function(function)
        if any(func_name(f) not in _ALLOWED_TABLE_FUNCTIONS for f in functions):
            raise ValueError("table function")
        snapshot = relations.Snapshot(cairn, info.user)
        info.schemas = frozenset(name for _, name in relations.schemas(snapshot))
        tables: dict[str, pa.Table] = {}
        ctes = cte_references(tree)
        for table in list(tree.find_all(exp.Table)):
            if isinstance(table.this, exp.Func):
                if (table.db or "").lower() == "pg_catalog":  # pg_catalog.unnest(…)
                    table.set("db", None)
                if func_name(table.this) == KEYWORDS:
                    tables["cairn_keywords"] = keywords.table()
                    words = exp.to_table("cairn_keywords")
                    table.replace(exp.alias_(words, table.alias or KEYWORDS, table=True))
                continue
            which = _catalog_table(table)
            if which is None:
                if id(table) in ctes:
                    continue  # a CTE in scope
                raise ValueError(f"{table.name} is not a catalog relation")
            kind, name = which
            builders = relations.PG_CATALOG if kind == "pg" else relations.INFORMATION_SCHEMA
            builder = builders.get(name)
            if builder is None:
                raise ValueError(f"{name} is not modelled")
            view = f"cairn_{kind}_{name}"
            if view not in tables:
                tables[view] = builder(snapshot)
            new = exp.to_table(view)
            alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(name))
            new.set("alias", alias)
            table.replace(new)
        if info.namespace is not None and any(  # those of search_path's namespace
                func_name(f) == "pg_table_is_visible" for f in tree.find_all(exp.Func)):
            tables[VISIBLE] = relations.visible(snapshot, info.namespace)
        unqualified(tree)
        tree = tree.transform(lambda n: _rewrite(n, info))
        # The bounds of any query (a catalog query may compute anything besides):
        # values built from a number, the answer's size, the statement timeout.
        budget = value_bounds.Budget()
        for node in tree.find_all(exp.SimilarTo, exp.Literal, exp.Window):
            if isinstance(node, exp.Window):
                unstoppable.check_window(node)  # mode() & co. over a moving frame
            elif isinstance(node, exp.SimilarTo):
                value_bounds.check_pattern(node.expression, "SIMILAR TO")
            elif isinstance(node, exp.Literal) and node.is_string:
                budget.literal(node)  # a long one copied per element of a lambda
        for func in tree.find_all(exp.Func):
            name = function_name(func)
            # What the sandbox denies but PostgreSQL's own pg_ functions
            # (DuckDB's stand-ins: pg_typeof, ...): settings, files, logs.
            if not name.startswith("pg_") and denied_function(name):
                raise PermissionDenied(f"function {name}() is not allowed: queries cannot touch "
                                       "files, the network or settings")
            budget.check(func, name)
            unstoppable.check_call(func, name)  # DuckDB's own, past its guard
        # string_split & co. in a lambda: its list's total (as plan_query does)
        lambda_guard.guard(list(tree.find_all(exp.Lambda, exp.Comprehension)))
        server = cairn.config.server
        sql = tree.sql(dialect="duckdb")
        cur, generation = self._db.cursor()
        # Timed and stopped as an ordinary SELECT's query (Engine.run_plan, _attempt).
        deadline, timeout = stopping.deadline(timeout)
        watchdog = cairn.engine.watchdog  # the one that times every query
        alarm = None if deadline is None else watchdog.arm(
            max(0.0, deadline - time.monotonic()), cur.interrupt)
        interrupt = stopping.target()
        try:
            for view, data in tables.items():
                cur.register(view, data)
            for name, names in regtypes.TABLES.items():  # format_type's names, regtype's
                cur.register(name, names)
            cur.register("cairn_definitions", relations.definitions(snapshot))
            cur.execute(_FORMAT_MACRO + regtypes.MACROS)
            if interrupt is not None:
                interrupt(cur.interrupt)  # CANCELLED if cancelled already
            result, cut = fetch_bounded(cur, sql, server.max_result_rows or None,
                                        server.max_result_bytes or None)
            refuse_time_with_zone(cur, sql, result.schema)  # as the engine's answers
        except duckdb.InterruptException:
            if alarm is not None and watchdog.disarm(alarm):
                raise stopping.overdue(timeout) from None
            raise Cancelled("query cancelled at the client's request") from None
        except duckdb.Error as exc:  # an internal error: a fresh DuckDB for the next query
            if invalidating(exc):
                self._db.restart(generation, "a pgwire catalog query", exc)
            if alarm is not None and watchdog.disarm(alarm):  # as Engine.run_plan: timed out
                raise stopping.overdue(timeout) from None
            if invalidating(exc):
                raise fault_of(exc) from None  # quarantined, braked
            raise
        finally:
            if interrupt is not None:
                interrupt(None)
            if alarm is not None:
                watchdog.disarm(alarm)
            cur.close()
        if cut:
            raise results.refuse_cut(result.num_rows, f"larger than max_result_rows "
                                     f"({server.max_result_rows}) or max_result_bytes "
                                     f"({server.max_result_bytes})")
        columns = [(f.name, _oid(f)) for f in result.schema]
        rows = results.Sized([list(r) for r in zip(*(c.to_pylist() for c in result.columns),
                                                 strict=False)] if result.num_columns else [])
        rows.nbytes = result.nbytes  # what a portal keeping them counts (kept.rows_size)
        return columns, rows


def _rewrite(node: exp.Expression, info: SessionInfo) -> exp.Expression:
    if type(node).__name__ in ("CurrentUser", "SessionUser", "CurrentRole") or (
            isinstance(node, exp.Column) and not node.table
            and node.name.lower() in USER_WORDS):
        return lit(info.user)
    if isinstance(node, exp.Func):
        fn = FUNCTIONS.get(func_name(node))
        if fn is not None:
            return fn(node, info)
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func) and (
            str(node.this.name).lower() == "pg_catalog"):
        # `pg_catalog.f(pg_catalog.g(x))`: what is returned is not walked again
        return cast(exp.Expression, node.expression).transform(lambda n: _rewrite(n, info))
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
        to = node.to.sql("postgres").lower().strip('"')
        if to == "regtype":
            oid = regtypes.type_oid(node.this.this) or 0
            return lit(regtypes.NAMES.get(oid, str(oid)) if shown(node) else oid)
        if to in ("regproc", "regprocedure") and not isinstance(node.parent, exp.Cast):
            # pg_type's typinput & co. hold names ('array_in'::regproc::oid stays 0)
            return lit(regtypes.proc_name(node.this.this))
        if to in _OID_TYPES:  # 'pg_class'::regclass, 'app.t'::regclass, '16384'::oid
            return lit(regtypes.named_oid(node.this.this, to))
        if node.to.is_type(exp.DataType.Type.ARRAY):  # '{a,b}'::text[] (pgjdbc's keywords)
            items = arrays.text_elements(node.this.this, InvalidArgument)
            return exp.cast(exp.Array(expressions=[lit(v) for v in items]),
                            cast(exp.DataType, node.to.transform(lambda n: _rewrite(n, info))))
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Cast) and (
            node.to.sql("postgres").lower() in _TEXT_TYPES
            and node.this.to.sql("postgres").lower() == "regtype"):
        return regtypes.regtype_text(node.this.this.transform(lambda n: _rewrite(n, info)))
    if isinstance(node, exp.Cast) and node.to.sql("postgres").lower() == "regtype":
        value = node.this.transform(lambda n: _rewrite(n, info))  # a name or a number
        return (regtypes.regtype_text if shown(node) else regtypes.regtype_oid)(value)
    if isinstance(node, exp.DataType):
        name = node.sql("postgres").lower().strip('"')
        if name in _OID_TYPES:
            return exp.DataType.build("BIGINT")
        if name in _TEXT_TYPES:
            return exp.DataType.build("VARCHAR")
    return node


def _oid(f: pa.Field) -> int:
    typ = cairn_type(f)
    if typ == "NULL":
        return t.TEXT
    return t.oid_of(typ)


def _empty_answer(tree: exp.Expression) -> list[tuple[str, int]]:
    if not isinstance(tree, exp.Query):
        return [("?column?", t.TEXT)]
    names = [p.alias_or_name or "?column?" for p in tree.selects]
    return [(n if n != "*" else "?column?", t.TEXT) for n in names] or [("?column?", t.TEXT)]


_FORMAT_MACRO = """
CREATE OR REPLACE TEMP MACRO cairn_format_type(typ, mod) AS CASE
  WHEN typ IS NULL THEN NULL
  WHEN typ = 1700 AND mod > 4 THEN
    'numeric(' || ((mod - 4) >> 16) || ',' || ((mod - 4) & 65535) || ')'
  WHEN typ = 25 AND mod > 4 THEN 'character varying(' || (mod - 4) || ')'
  ELSE coalesce((SELECT display FROM cairn_type_names WHERE oid = typ), '???') END;
CREATE OR REPLACE TEMP MACRO cairn_definition(o) AS
  (SELECT def FROM cairn_definitions WHERE oid = o)
"""
