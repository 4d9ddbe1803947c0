"""User SQL may compute, never reach outside: two fences, either one enough.

1. sqlglot allow-list, checked before DuckDB sees anything: only a query
   (SELECT / set operations / VALUES), no statement that configures or touches
   files (ATTACH, COPY, INSTALL, LOAD, PRAGMA, SET, EXPORT, CREATE, ...), no
   table function but `range`/`generate_series`/`unnest`, no file-reading or
   settings-reading scalar function, no table name that looks like a path;
   and no value built from a number past its bound, nor a function whose
   working memory outgrows its arguments (value_bounds.py: DuckDB's memory
   limit does not cover the strings and lists scalar functions build).
2. DuckDB itself: `enable_external_access = false` with `allowed_directories`
   limited to the data dir's `files/` (Cairn's own reads of its Parquet files),
   Python replacement scans off, and `lock_configuration = true` so no SQL can
   undo any of it.

Nor does DuckDB write where the server's files are not: an in-memory DuckDB
spills what passes its memory limit to `.tmp` under the process's working
directory unless told otherwise. The main DuckDB spills to `tmp/duckdb-spill`
in the data dir, at most `[storage] duckdb_spill_limit`; every other
connection (`scratch_config`) never spills."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
from sqlglot import exp
from sqlglot.errors import SqlglotError

from catalog.errors import InvalidArgument, PermissionDenied

from . import duckbugs, lambda_guard, unstoppable, value_bounds
from .literal_range import literal_problem
from .names import function_name

ALLOWED_TABLE_FUNCTIONS = frozenset({"generate_series", "range", "unnest", "explode"})

DENIED_FUNCTIONS = frozenset({
    "glob", "query", "query_table", "getenv", "current_setting", "which_secret",
    "sniff_csv", "load_extension", "checkpoint", "force_checkpoint", "arrow_scan",
    "from_csv_auto", "json_execute_serialized_sql", "read_text", "read_blob",
    "enable_profiling", "disable_profiling", "set_variable", "getvariable",
    # The statement as DuckDB runs it: Cairn's rewriting, with the data
    # dir's paths and the names of the Arrow tables registered for it.
    "current_query",
    # SQL in a string, which DuckDB parses, binds and (plan) optimizes out of
    # the allow-list's sight: read_parquet of another user's files, settings
    # folded to constants, values built past every bound.
    "json_serialize_plan", "json_serialize_sql", "json_deserialize_sql",
    "write_log", "parse_duckdb_log_message",
    # Counters of the whole server, moved by every user's queries: another
    # user's activity, query by query (txid_current() went up with them).
    "txid_current", "current_transaction_id", "current_query_id", "current_connection_id",
})  # fmt: skip
DENIED_PREFIXES = (
    "read_", "parquet_", "iceberg_", "delta_", "duckdb_", "pragma_", "sqlite_",
    "postgres_", "mysql_", "json_execute", "sniff_", "glob", "copy_", "export_",
    "import_", "system", "pg_", "information_schema", "__internal",
)  # fmt: skip
DENIED_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Command", "Copy", "Attach", "Detach", "Install", "Pragma", "Set", "SetItem",
        "Create", "Drop", "Alter", "Insert", "Update", "Delete", "Merge", "Use",
        "Transaction", "Commit", "Rollback", "Summarize", "Describe", "Export",
        "LoadData", "Cache", "Uncache", "Refresh", "Kill", "Grant", "Revoke", "Analyze",
    )
    if hasattr(exp, name)
)  # fmt: skip
PATHLIKE = set("./\\:~*?")


def cte_references(tree: exp.Expression) -> set[int]:
    """The ids of the tree's table nodes that name a CTE in scope where they
    stand, by sqlglot's scopes: a WITH is seen by the query it heads (its
    later CTEs, a RECURSIVE one by itself) and the subqueries in it, not by
    a query beside it. Collected by name over the whole tree, a CTE inside
    one subquery made the same name unrewritten everywhere, and DuckDB then
    read it from its own catalog: `pg_settings` (the server's paths), and
    the Arrow tables another user's query had registered (their rows).
    A table node not in this set is a Cairn table, rewritten or NOT_FOUND."""
    if tree.find(exp.CTE) is None:
        return set()
    from sqlglot.optimizer.scope import traverse_scope  # only for a query with a WITH

    found: set[int] = set()
    try:
        scopes = traverse_scope(tree)
    except (SqlglotError, RecursionError):  # no scopes: every name is a table
        return found
    for scope in scopes:
        names = {fold(name) for name in scope.cte_sources}
        for table in scope.tables:
            if not table.args.get("db") and not table.args.get("catalog") \
                    and fold(table.name) in names:
                found.add(id(table))
    return found


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """A name as DuckDB compares it (quoted too): ASCII letters lowered, no
    other. Python's `lower()` also turns the Kelvin sign (U+212A) into `k`:
    a CTE named with it passed for `duckdb_databases`, which DuckDB then read
    from its own catalog."""
    return name.translate(_ASCII_LOWER)


def denied_function(name: str) -> bool:
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)


# DuckDB orders a query's joins before it runs, and that is not interrupted
# (no timeout, KILL or cancel reaches it): 120 joins of one-row subqueries
# planned 20-30 s, 300 joins 7 minutes, a statement thread each; 64 plan in
# ~0.1 s.
MAX_JOINS = 64


def check_query(expression: exp.Expression | None, small: bool = False) -> None:
    """Raise PERMISSION_DENIED unless the tree is a query that only computes.
    `small`: the tree came from the parser's fast path; if it has exactly
    that shape (`fast_path_tree`, a few attribute reads) it is not walked."""
    if small and fast_path_tree(expression):
        return
    if not isinstance(expression, exp.Query | exp.Values):
        name = ("nothing" if expression is None else expression.name.upper()
                if isinstance(expression, exp.Command) else type(expression).__name__.upper())
        raise PermissionDenied(
            f"{name} is not allowed: only SELECT, INSERT, UPDATE and DELETE on Cairn tables"
        )
    check_fragment(expression)


# The arguments a fast-path point SELECT sets (sqlgrammar/fastpath.py `_select`).
_SHAPE_SELECT = frozenset({"expressions", "from_", "where"})


def _word(node: Any) -> bool:
    """A plain identifier: a name with no path-like character."""
    return (type(node) is exp.Identifier and isinstance(node.this, str)
            and not PATHLIKE & set(node.this))


def _only(node: Any, allowed: Any = frozenset({"this"})) -> bool:
    """Whether `node` sets no argument but those in `allowed`."""
    return not any(v for k, v in node.args.items() if k not in allowed)


def _plain_column(node: Any) -> bool:
    return type(node) is exp.Column and _word(node.this) and _only(node)


def fast_path_tree(expression: Any) -> bool:
    """Whether the tree is exactly the point SELECT shape of the parser's
    fast path: `SELECT col, ... FROM [ns.]t WHERE col = literal`, every
    name a plain word, a number literal shorter than 39 characters, nothing
    else set. Nothing in such a tree is what `check_query` refuses (no
    statement but SELECT, no function, no parameter, no path-like table
    name, no number past what DuckDB returns), so `check_query` asks this of a
    fast-path tree (~10 µs) instead of walking it (~45 µs)
    (tests/storage/test_sandbox_fast.py)."""
    if type(expression) is not exp.Select:
        return False
    if not _only(expression, _SHAPE_SELECT):
        return False
    args = expression.args
    columns, frm, where = args.get("expressions"), args.get("from_"), args.get("where")
    if not columns or not all(_plain_column(c) for c in columns):
        return False
    if type(frm) is not exp.From or not _only(frm):
        return False
    table = frm.this
    if type(table) is not exp.Table or not _word(table.this):
        return False
    db = table.args.get("db")
    if db is not None and not _word(db):
        return False
    if not _only(table, ("this", "db")):
        return False
    if type(where) is not exp.Where or not _only(where):
        return False
    eq = where.this
    if type(eq) is not exp.EQ or not _plain_column(eq.this):
        return False
    value = eq.expression
    if type(value) is exp.Neg and _only(value):
        value = value.this
    # A number of 39 characters or more may be one `check_fragment` refuses
    # (`literal_range`): `SELECT k FROM t WHERE tx = <50 digits>` ran while
    # `SELECT * ...`, which is walked, was refused.
    return (type(value) is exp.Literal and isinstance(value.this, str)
            and _only(value, ("this", "is_string"))
            and (value.is_string or len(value.this) < 39))


def check_fragment(expression: exp.Expression) -> None:
    """Raise PERMISSION_DENIED if any part of the tree (a WHERE, a SET value, a
    VALUES row, a subquery) configures DuckDB or reaches files or the network;
    INVALID_ARGUMENT past MAX_JOINS joins."""
    joins = 0
    budget = value_bounds.Budget()
    for node in expression.walk():
        if isinstance(node, DENIED_NODES):
            raise PermissionDenied(f"{type(node).__name__.upper()} is not allowed in a query")
        if isinstance(node, exp.Cast) and (hexed := _hex_bytea(node)):  # a Func: first
            raise InvalidArgument(
                f"'{hexed}' as bytes is ambiguous: PostgreSQL reads it as hex "
                "(one byte per two digits), DuckDB as one \\xHH byte and then characters. "
                "Write from_hex('…'), or each byte as \\xHH, or send the bytes as a parameter")
        if isinstance(node, exp.Join) and (joins := joins + 1) > MAX_JOINS:
            raise InvalidArgument(f"a statement joins at most {MAX_JOINS} times")
        if isinstance(node, exp.Table):
            _check_table(node)
        elif isinstance(node, exp.Lateral) and isinstance(node.this, exp.Func):
            _check_table_function(node.this)  # LATERAL f(): a table function too
        elif isinstance(node, exp.Func):
            name = function_name(node)
            if denied_function(name):
                raise PermissionDenied(
                    f"function {name}() is not allowed: queries cannot touch files, the "
                    "network or settings"
                )
            budget.check(node, name)
            duckbugs.check(node, name)  # a form known to make DuckDB fail internally
            unstoppable.check_call(node, name)  # DuckDB's own, past its guard
        elif isinstance(node, exp.Parameter | exp.Placeholder | exp.SessionParameter):
            raise PermissionDenied("parameters and variables are not allowed in a query")
        elif isinstance(node, exp.SimilarTo):
            value_bounds.check_pattern(node.expression, "SIMILAR TO")
        elif isinstance(node, exp.Literal) and node.is_string:
            budget.literal(node)
        elif isinstance(node, exp.Window):
            unstoppable.check_window(node)  # mode() & co. over a moving frame
        elif isinstance(node, exp.DataType) and _unsigned_huge(node):
            raise InvalidArgument(
                "UHUGEINT is not supported (an answer cannot carry its values past "
                "2^127 - 1, the largest HUGEINT): use HUGEINT or DECIMAL(38,0)")
        elif isinstance(node, exp.Literal) and (wrong := literal_problem(node)):
            raise InvalidArgument(wrong)
        elif isinstance(node, exp.DataType) and _bignum(node):
            raise InvalidArgument(
                "BIGNUM (VARINT) is not supported (an answer cannot carry its values: "
                "they came back as their storage bytes): use HUGEINT or DECIMAL(38,0)")


_HEX_BYTES = re.compile(r"\\x(?:[0-9A-Fa-f]{2}){2,}")


def _hex_bytea(node: exp.Cast) -> str | None:
    """`'\\x00ff6162'::bytea`: PostgreSQL's hex form of two or more bytes (what
    psycopg2 and psycopg's ClientCursor write), which DuckDB's BLOB cast reads
    as one byte and six characters: 7 bytes were stored where 4 were sent."""
    if node.to.this != exp.DataType.Type.VARBINARY:
        return None
    value = node.this
    text_types = (exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR)
    while isinstance(value, exp.Paren) or (isinstance(value, exp.Cast)
                                           and value.to.this in text_types):
        value = value.this  # ('\\x0102')::bytea, '\\x0102'::TEXT::bytea
    text = (value.this if isinstance(value, exp.Literal) and value.is_string
            else value.this if isinstance(value, exp.ByteString) else None)  # E'\\\\x0102'
    return text if isinstance(text, str) and _HEX_BYTES.fullmatch(text) else None


def _bignum(node: exp.DataType) -> bool:
    """DuckDB's BIGNUM, also spelled VARINT (a cast `123::VARINT`)."""
    if node.this == exp.DataType.Type.BIGNUM:
        return True
    kind = node.args.get("kind")
    return node.this == exp.DataType.Type.USERDEFINED and str(kind or "").upper() in (
        "VARINT", "BIGNUM")


def _unsigned_huge(node: exp.DataType) -> bool:
    """A UHUGEINT type: DuckDB hands UHUGEINT to Arrow as a 128-bit DECIMAL,
    bit for bit, so 2^128 - 1 came back as -1 (an integer literal DuckDB
    types UHUGEINT: `literal_range`)."""
    return bool(node.this == exp.DataType.Type.UINT128)


def _check_table_function(target: exp.Func) -> None:
    name = function_name(target)
    if name not in ALLOWED_TABLE_FUNCTIONS:
        raise PermissionDenied(
            f"table function {name}() is not allowed: queries read Cairn tables only"
        )


def _check_table(node: exp.Table) -> None:
    target = node.this
    if isinstance(target, exp.Func):
        _check_table_function(target)
        return
    if isinstance(target, exp.Identifier) or target is None:
        parts = [p.name for p in node.parts] if node.parts else [node.name]
        for part in parts:
            if PATHLIKE & set(part):
                raise PermissionDenied(
                    f"'{part}' looks like a file path: queries cannot read files"
                )
        for arg in ("version", "when", "changes"):
            if node.args.get(arg) is not None:
                raise PermissionDenied(f"{arg.upper()} clauses on tables are not allowed")
        return
    if isinstance(target, exp.Literal | exp.Placeholder | exp.Parameter):
        raise PermissionDenied("reading a file or variable as a table is not allowed")


SPILL_DIR = "duckdb-spill"  # under the data dir's tmp/ (swept at start)


def connect(data_dir: Path, memory_limit: str, threads: int,
            spill_limit: str = "0", generation: int = 0) -> duckdb.DuckDBPyConnection:
    """One of the server's DuckDBs (in memory), locked down before anyone uses
    it. Callers take `cursor()` per query and thread. What passes the memory
    limit goes to `tmp/duckdb-spill` in the data dir, up to `spill_limit`
    ("0": nowhere, the query runs out of memory). `generation`: how many
    times this DuckDB was rebuilt (storage/duckrestart.py); a rebuilt one
    spills to `tmp/duckdb-spill-<generation>`, apart from the DuckDB it
    replaces (which removes its spill folder when it is freed)."""
    files_dir = (data_dir / "files").resolve()
    files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config: dict[str, Any] = {"threads": max(1, int(threads)), "memory_limit": str(memory_limit)}
    if size_bytes(spill_limit):
        tmp = (data_dir / "tmp").resolve()
        tmp.mkdir(mode=0o700, parents=True, exist_ok=True)  # DuckDB makes only the last folder
        spill = SPILL_DIR if not generation else f"{SPILL_DIR}-{generation}"
        config.update(temp_directory=str(tmp / spill), max_temp_directory_size=str(spill_limit))
    else:
        config["temp_directory"] = ""
    con = duckdb.connect(":memory:", config=config)
    # GLOBAL: a plain SET of these is the connection's own, and every query
    # runs on a cursor (a connection of its own) that would not see it.
    con.execute("SET GLOBAL python_enable_replacements = false")
    con.execute("SET GLOBAL parquet_metadata_cache = true")  # our files never change in place
    con.execute("SET GLOBAL disable_parquet_prefetching = true")
    in_utc(con)
    unstoppable.define(con)  # jaro_similarity & co. past the timeout: refused when reached
    lambda_guard.define(con)  # ... and in a lambda, over all of a row's elements
    con.execute("SET allowed_directories = ?", [[str(files_dir) + "/"]])
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
MIN_MEMORY_BYTES = 64 * 10**6


def in_utc(con: duckdb.DuckDBPyConnection) -> None:
    """Every cursor of `con` reads times in UTC, as Cairn stores them: in the
    server's own zone (TZ) `now()::TIMESTAMP`, `current_date` and
    `date_trunc('day', now())` were local times, stored and compared as UTC
    (`WHERE _updated > now() - INTERVAL 1 HOUR` found nothing at UTC+14)."""
    con.execute("LOAD icu")  # built in, but not loaded without a zone setting
    con.execute("SET GLOBAL TimeZone = 'UTC'")


def scratch_config(threads: int = 1) -> dict[str, Any]:
    """The config of a DuckDB the server uses for its own work (no user SQL):
    never spilling, so never writing under the working directory."""
    return {"threads": threads, "temp_directory": ""}


def size_bytes(text: str) -> float | None:
    """The bytes a DuckDB size such as "4GB" or "512 MiB" says; "0" is 0; None
    for anything else (no unit, a negative or a percentage)."""
    if str(text).strip() == "0":
        return 0.0
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]+)\s*", str(text))
    unit = _UNITS.get(m.group(2).lower()) if m else None
    return None if m is None or unit is None else float(m.group(1)) * unit


def fraction_of(memory_limit: str, divisor: int) -> str:
    """A DuckDB memory limit `divisor` times smaller (at least 64 MB); the
    limit itself if it does not read as a size."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(memory_limit))
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None:
        return str(memory_limit)
    size = float(m.group(1)) * unit
    return f"{max(int(size / divisor), min(int(size), MIN_MEMORY_BYTES)) // 1000}KB"


def settings(con: Any) -> dict[str, str]:
    rows = con.execute("SELECT name, value FROM duckdb_settings()").fetchall()
    return {name: value for name, value in rows}
