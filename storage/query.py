"""From a user's query to DuckDB SQL over Cairn's tables.

Every table name in the query is replaced by a per-query temporary view: the
table's Parquet files (grouped by the schema version they were written under,
each group projected onto the current schema) UNION ALL its buffered rows
(registered as Arrow), deduplicated to the newest version of each key, without
soft-deleted rows unless the query's WHERE names `_deleted`. `system.x` becomes
an Arrow table built from catalog records (DuckDB reserves the name `system`).
Views go into the query's text as subqueries; the Arrow tables (buffers, system
tables) are registered for the one query under names no user SQL can name (every
table name in a query is rewritten), so concurrent queries never meet."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from catalog import DataFile, Table
from catalog.errors import InvalidArgument, NotFound, PermissionDenied

from . import deleted_rule, json_columns, keys, lambda_guard, pushdown, sandbox, scopes
from .buffer import TableState, point_mask
from .caller import columns_named, names_a_user_word, the_caller, user_word
from .json_columns import CAIRN_TYPE
from .names import fold
from .pushdown import point_key
from .resolve import Replaced, at_one_moment
from .timing import WouldWait, waiting_allowed
from .types import DELETED, OW, SEQ, Column, default_value, duckdb_type, sql_literal

if TYPE_CHECKING:
    from .files import FileStore
    from .keys import FileRanges

# One dialect object (`expression.sql(dialect="duckdb")` builds one per call).
_DUCKDB = Dialect.get_or_raise("duckdb")
def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Snapshot:
    """What one query reads of one table, taken at one instant."""

    table: Table
    columns: list[Column]
    primary_key: list[str]
    files: list[DataFile]
    buffer: pa.Table
    append_only: bool


def take_snapshot(
    st: TableState,
    user: str | None,
    files: FileStore,
    point: dict[str, Any] | None = None,
    ranges: FileRanges | None = None,
    show_deleted: bool = False,
) -> tuple[Snapshot, str]:
    """Copy a table's files and buffer under its lock and pin the files, so a
    flush, a drop or a compaction cannot pull them away mid-query.

    `point` ({pk column: value}, every key column) says the query only reads
    rows of that one key: the files whose key range or filter leaves it out, and the
    buffered batches the buffer's key index does not name for it, are left
    out of the snapshot (they hold no version of the key, so the
    newest-version logic is unchanged). A state dropped meanwhile (a restore
    replaced the table) raises `Replaced`: it is never read as an empty table."""
    user_table = st.table.table_type == "user"
    if user_table and user is None:
        raise PermissionDenied(
            f"Table '{st.table.namespace}.{st.table.name}' is a USER table: every row belongs "
            "to a user, and this request names none (send X-User-Id or a token)"
        )
    pk = st.table.primary_key
    with st.lock:
        if st.dropped:
            raise Replaced(f"{st.table.namespace}.{st.table.name}")
        recs = [f for f in st.files if not user_table or f.user_id == user]
        buffer, cut = None, False
        if point is not None and keys.settable(st.columns, pk):
            cols = [[point[k]] for k in pk]
            bounds = keys.bounds_of(cols, st.columns, pk)
            if ranges is not None:  # by key range, then by key filter (storage/keyfilter.py)
                recs = [f for f in recs if keys.file_may_hold(ranges.get(f), pk, cols, bounds)]
                recs = ranges.filters.keep(recs, cols, st.columns, pk)
            probe = keys.probe_keys(cols, user, user_table)
            found = st.keys.batches_of(probe, st.batches, pk, user_table)
            if found is not None:  # only the batches holding a version of the key
                buffer = st.key_rows(found, point, user, min_ts=st.ttl_floor())
                cut = buffer is not None
        snap = Snapshot(
            table=st.table,
            columns=list(st.columns),
            primary_key=list(pk),
            files=recs,
            buffer=buffer if buffer is not None else st.buffer_table(user, min_ts=st.ttl_floor()),
            append_only=st.append_only,
        )
        token = files.pin([f.path for f in recs])
    if point is not None and snap.buffer.num_rows:
        _one_key(snap, point, show_deleted, cut)
    return snap, token


def _one_key(snap: Snapshot, point: dict[str, Any], show_deleted: bool, cut: bool) -> None:
    """A point query reads one key: cut the buffer to that key's versions in
    Arrow (unless the key index already did, `cut`), so DuckDB is handed a
    few rows, not the whole buffer. With no file left to read, the newest
    version is picked here too (the highest `_seq`; none if it is a deletion
    the query does not ask for), so DuckDB runs a plain scan instead of the
    newest-version join (~3 ms less per lookup)."""
    rows = snap.buffer
    if not cut:
        try:
            rows = rows.filter(point_mask(rows, point))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError):
            return  # the key's values do not compare with the columns: DuckDB decides
        snap.buffer = rows
    if snap.files or snap.append_only or not rows.num_rows:
        return
    newest = rows if rows.num_rows == 1 else rows.slice(
        pc.index(rows.column(SEQ), pc.max(rows.column(SEQ))).as_py(), 1)
    if (not show_deleted and DELETED in newest.column_names
            and newest.column(DELETED)[0].as_py()):
        newest = newest.slice(0, 0)
    snap.buffer = newest
    snap.append_only = True  # at most one version left: nothing to choose between


def view_sql(snap: Snapshot, buffer_name: str, files: FileStore, *, show_deleted: bool,
             key_filter: str | None = None) -> str:
    """The SQL of one table's current rows (visible columns only). `key_filter`
    (SQL over primary-key columns only, storage/pushdown.py) is applied in every
    scan: the caller keeps it in its own WHERE too; here it only spares work."""
    cond = f" WHERE {key_filter}" if key_filter else ""
    cols = snap.columns
    names = [c["name"] for c in cols]
    groups: dict[int, list[str]] = {}
    for f in snap.files:
        groups.setdefault(f.schema_version, []).append(str(files.abs(f.path)))
    parts = []
    hidden = f"{SEQ}, {OW}"
    for version in sorted(groups):
        proj = [
            quote(c["name"]) if c.get("since", 1) <= version
            else f"{sql_literal(c, default_value(c))} AS {quote(c['name'])}"
            for c in cols
        ]
        paths = ", ".join(sql_string(p) for p in groups[version])
        parts.append(f"SELECT {', '.join(proj)}, {hidden} FROM read_parquet([{paths}]){cond}")
    if snap.buffer.num_rows:
        parts.append(f"SELECT {', '.join(map(quote, names))}, {hidden} FROM {buffer_name}{cond}")
    if not parts:
        nulls = ", ".join(f"CAST(NULL AS {duckdb_type(c)}) AS {quote(c['name'])}" for c in cols)
        return f"SELECT {nulls} WHERE false"
    body = " UNION ALL ".join(parts)
    visible = ", ".join(map(quote, names))
    if snap.append_only:
        return f"SELECT {visible} FROM ({body})"
    # Newest version per key. Every version but a key's first is marked `_ow`,
    # so the keys with several versions are found among the (few) `_ow` rows:
    # rows of other keys pass through a hash anti-join with that small set, and
    # of the rest only each key's newest version joins back. Measured 2-4x
    # faster than a row_number() window over every row, and a WHERE on the
    # key still reaches the scans. Its own column has a `#` no column name has
    # (a key named `__mseq` was taken for it: updated rows left the scans).
    key = ", ".join(map(quote, snap.primary_key))
    same = " AND ".join(f"__o.{quote(k)} = __r.{quote(k)}" for k in snap.primary_key)
    cols_r = ", ".join(f"__r.{quote(n)}" for n in names)
    deduped = (
        f"WITH __o AS MATERIALIZED (SELECT {key}, max({SEQ}) AS \"#mseq\" FROM ({body}) "
        f"WHERE {OW} GROUP BY {key}) "
        f"SELECT {cols_r} FROM ({body}) AS __r ANTI JOIN __o USING ({key}) "
        f"UNION ALL SELECT {cols_r} FROM ({body}) AS __r JOIN __o ON {same} "
        f"AND __o.\"#mseq\" = __r.{SEQ}"
    )
    where = "" if show_deleted or DELETED not in names else f" WHERE NOT {quote(DELETED)}"
    return f"SELECT {visible} FROM ({deduped}){where}"


@dataclass
class Plan:
    """A rewritten query and what its cursor needs before it runs."""

    sql: str = ""
    arrow: list[tuple[str, pa.Table]] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)
    json_names: set[str] = field(default_factory=set)
    json_columns: list[bool] | None = None  # by position (json_columns.of), if known
    json_guessed: bool = False  # json_columns.of could not tell: by name, a guess
    tables: list[Table] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # view -> the name the user wrote
    inline: dict[str, str] = field(default_factory=dict)  # placeholder -> (view SQL)
    # What picks the DuckDB a query runs on (engine.SMALL_QUERY_ROWS): the rows it
    # reads (files, buffers, system tables), how many table references it has,
    # and whether it calls a table function (range(), unnest(): rows unknown).
    rows: int = 0
    refs: int = 0
    table_function: bool = False
    # What each Cairn table reference reads (for EXPLAIN): name, files, buffered rows.
    reads: list[tuple[str, list[DataFile], int]] = field(default_factory=list)
    # The answer itself, when it could be read off the snapshot (storage/direct.py):
    # DuckDB is then not asked.
    answer: pa.Table | None = None
    tree: exp.Expression | None = None  # what `sql` was printed from (query_errors.py)


def names_deleted(expression: exp.Expression) -> bool:
    """Does any WHERE of the query name `_deleted` (in any case, quoted or not:
    DuckDB reads `_DELETED` and `"_Deleted"` as `_deleted`), or `_deleted_1`
    (a subquery's second one, as DuckDB names it)?"""
    return any(
        sandbox.fold(col.name).startswith(DELETED) for where in expression.find_all(exp.Where)
        for col in where.find_all(exp.Column)
    )


def tree_facts(expression: exp.Expression, deleted: bool = True,
               users: list[exp.Expression] | None = None,
               fast: bool | None = None,
               lambdas: list[exp.Expression] | None = None,
               ) -> tuple[list[exp.Table], set[int], bool]:
    """The query's table nodes (in tree order), the ids of those that name a
    CTE in scope (`sandbox.cte_references`), and whether a
    WHERE may name a `_deleted` (`names_deleted`, or an alias column list
    may rename one; False unless `deleted` asks for it). Of the fast path's point SELECT
    (`sandbox.fast_path_tree`, a few attribute reads; `fast` if the caller
    asked it) they are read where they
    stand: one table, no CTE, the one column of its WHERE; else the tree is
    walked, ~15 µs a walk (tests/storage/test_sandbox_fast.py holds the two
    to each other). `lambdas` gets the lambdas and comprehensions, in tree
    order (lambda_guard.guard)."""
    if (fast if fast is not None else sandbox.fast_path_tree(expression)) \
            and not names_a_user_word(expression):
        where = expression.args["where"].this
        return ([expression.args["from_"].this], set(),
                deleted and sandbox.fold(where.this.name).startswith(DELETED))
    found = expression.find_all(exp.Table, exp.CurrentUser, exp.SessionUser, exp.CurrentRole,
                                exp.Column, exp.Anonymous, exp.TableAlias, exp.Lambda,
                                exp.Comprehension)
    tables = []
    renames = False  # an alias column list: `x(k, f, u, d) WHERE d` names t's _deleted
    for n in found:
        if isinstance(n, exp.Table):
            tables.append(n)
        elif isinstance(n, exp.Lambda | exp.Comprehension):
            if lambdas is not None:
                lambdas.append(n)
        elif isinstance(n, exp.TableAlias):
            renames = renames or bool(n.args.get("columns"))
        elif users is not None and user_word(n) is not None:  # see plan_query
            users.append(n)
    return tables, sandbox.cte_references(expression), deleted and (
        renames or names_deleted(expression))


def answered(plan: Plan, snap: Snapshot, name: str) -> Plan:
    """`plan`, whose `answer` was read off `snap` (the one table it names,
    `name` as ns.table), as `run_plan` and EXPLAIN take it."""
    plan.refs, plan.rows = 1, snap.buffer.num_rows + sum(f.rows for f in snap.files)
    plan.tables.append(snap.table)
    plan.reads.append((name, snap.files, snap.buffer.num_rows))
    plan.json_names |= {c["name"] for c in snap.columns if c["type"] == "JSON"}
    return plan


def plan_query(
    expression: exp.Expression,
    user: str | None,
    default_namespace: str | None,
    state_of: Callable[[str, str], TableState],
    system_table: Callable[[str], pa.Table | None],
    files: FileStore,
    *,
    show_deleted: bool | None = None,
    ranges: FileRanges | None = None,
    direct: Callable[..., pa.Table | None] | None = None,
    frozen: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> Plan:
    """Rewrite table references in `expression` (a copy the caller owns).
    `direct(expression, table node, snapshot, point)` may give the answer of
    a one-table query from its snapshot (storage/direct.py). Every table is
    snapshotted at one moment with respect to DDL and restores
    (storage/resolve.py; `frozen` holds the registry's `ddl`)."""
    plan = Plan()
    users: list[exp.Expression] = []
    fast = sandbox.fast_path_tree(expression)  # `fast`: asked once, told to tree_facts
    lambdas: list[exp.Expression] = []
    nodes, ctes, deleted = tree_facts(expression, show_deleted is None, users, fast, lambdas)
    if users:  # DuckDB's current_user, user, ... are 'duckdb' (INSERTs stored it): the caller
        taken: set[str] = set()
        if any(isinstance(n, exp.Column) for n in users):
            taken = columns_named(expression, nodes, ctes, default_namespace, state_of)
        the_caller(users, user, taken)
    shown = deleted_rule.deleted_shown(expression, ctes, default_namespace, state_of,
                                       show_deleted, deleted)
    seen: dict[tuple[str, ...], str] = {}
    bufs: dict[tuple[str, str], str] = {}  # a table's buffer's name, once named
    outputs: dict[str, json_columns.Outputs] = {}  # view -> its columns (name, is JSON)
    placed: dict[int, json_columns.Outputs] = {}  # the same by id of the node naming it
    # One table, no alias, subquery or CTE: no other name to keep apart from.
    renamed, columns = ({}, []) if fast else scopes.own_aliases(expression, nodes, ctes,
                                                                default_namespace, state_of)
    if not fast:
        scopes.keep_names(expression, {id(c) for c, _ in columns})
    token = ""  # random, made when a view is first named (see the end; a point
    # SELECT answered off its snapshot names none, and needs no urandom call)
    try:
        snaps = _snapshots(expression, nodes, ctes, default_namespace, state_of, user, files,
                           ranges, len(nodes) == 1 and deleted_rule.shows(nodes[0], shown), frozen)
        plan.pins += [pin for _, pin in snaps.values()]
        for node in nodes:
            if isinstance(node.this, exp.Dot):  # a.b.c.d: more parts than ns.table
                dotted = ".".join(p.name for p in node.parts)
                raise NotFound(f"Table '{dotted}' does not exist: tables are named ns.table")
            if not isinstance(node.this, exp.Identifier):
                plan.table_function = True
                continue
            plan.refs += 1
            # Names fold to lower case, as everywhere else (DESCRIBE TABLE APP.NOTES).
            name, db, catalog = fold(node.name), fold(node.db), fold(node.catalog)
            if catalog:
                raise NotFound(f"Table '{catalog}.{db}.{name}' does not exist")
            if id(node) in ctes:  # a CTE in scope (no namespace); any other name is a table
                continue
            if db == "system" or not db and default_namespace == "system":
                if not waiting_allowed():  # built from the catalog, read by DuckDB
                    raise WouldWait("a system table")
                view = seen.get(("system", name))
                if view is None:
                    arrow = system_table(name)
                    if arrow is None:
                        raise NotFound(f"Table 'system.{name}' does not exist")
                    token = token or uuid.uuid4().hex[:12]
                    view = seen[("system", name)] = f"__cairn_{token}_sys_{name}"
                    plan.names[view] = f"system.{name}"
                    plan.arrow.append((view, arrow))
                    plan.rows += arrow.num_rows
                    outputs[view] = [(f.name, bool(f.metadata) and f.metadata.get(CAIRN_TYPE)
                                      == b"JSON") for f in arrow.schema]
            else:
                ns = db or default_namespace
                if not ns:
                    raise InvalidArgument(f"no namespace given for table '{name}'")
                show = deleted_rule.shows(node, shown)
                view = seen.get((ns, name, str(show)))
                if view is None and (ns, name) in bufs:  # another reference, other rows
                    (snap, _), _ = snaps[(ns, name)]
                    view = seen[(ns, name, str(show))] = f"__cairn_{token}_{len(seen)}"
                    sql = view_sql(snap, bufs[(ns, name)], files, show_deleted=show)
                    plan.inline[view] = f"({sql})"
                    outputs[view] = [(c["name"], c["type"] == "JSON") for c in snap.columns]
                    plan.names[view] = f"{ns}.{name}"
                elif view is None:
                    (snap, point), _ = snaps[(ns, name)]
                    if direct is not None and not seen:
                        plan.answer = direct(expression, node, snap, point)
                    if plan.answer is None and not waiting_allowed():
                        raise WouldWait("DuckDB")  # before the tree is rewritten
                    if plan.answer is not None and len(nodes) == 1:
                        # Answered off the snapshot, and the query names no
                        # other table: no view names, no rewritten tree, no SQL.
                        return answered(plan, snap, f"{ns}.{name}")
                    n = len(seen)
                    token = token or uuid.uuid4().hex[:12]
                    view = seen[(ns, name, str(show))] = f"__cairn_{token}_{n}"
                    buf = f"__cairn_{token}_b{n}"
                    bufs[(ns, name)] = buf
                    plan.names[buf] = f"{ns}.{name}"
                    if snap.buffer.num_rows:
                        plan.arrow.append((buf, snap.buffer))
                    plan.rows += snap.buffer.num_rows + sum(f.rows for f in snap.files)
                    if plan.answer is None or len(nodes) > 1:  # else no SQL is made
                        sql = view_sql(snap, buf, files, show_deleted=show,
                                       key_filter=pushdown.key_filter(
                                           expression, snap.primary_key, snap.columns))
                        plan.inline[view] = f"({sql})"
                    plan.tables.append(snap.table)
                    plan.reads.append((f"{ns}.{name}", snap.files, snap.buffer.num_rows))
                    plan.names[view] = f"{ns}.{name}"
                    outputs[view] = [(c["name"], c["type"] == "JSON") for c in snap.columns]
            alias = node.args.get("alias") or exp.TableAlias(
                this=exp.to_identifier(renamed.get(id(node), name), quoted=id(node) in renamed))
            new = exp.Table(this=exp.Identifier(this=view, quoted=False), alias=alias)
            for arg in ("joins", "laterals", "pivots", "sample", "hints"):
                if node.args.get(arg):
                    new.set(arg, node.args[arg])
            node.replace(new)
            placed[id(new)] = outputs[view]
            # The names its JSON columns go by here (`AS x(k, s, j)`: `s` is the table's j).
            cols = [sandbox.fold(c.name) for c in alias.columns]
            plan.json_names |= {cols[i] if i < len(cols) else n
                                for i, (n, j) in enumerate(outputs[view]) if j}
        for col, own in columns:  # ns.t.c and t.c of a table given its own alias
            col.set("table", exp.to_identifier(own, quoted=True))
        for col in expression.find_all(exp.Column):
            if col.args.get("db") is not None:
                col.set("db", None)
                col.set("catalog", None)
    except BaseException:
        release(plan, files)
        raise
    if plan.refs != 1 or plan.table_function:
        plan.answer = None  # more than the one table: DuckDB
    if plan.answer is not None:
        return plan  # answered off the snapshot: no SQL text needed (~0.17 ms saved)
    if not fast:  # (a fast-path SELECT names plain columns: its names tell)
        plan.json_columns = json_columns.of(expression, placed, ctes)
        plan.json_guessed = plan.json_columns is None
    if lambdas:  # string_split & co. in a lambda: its list's total
        lambda_guard.guard(lambdas)
    text = _DUCKDB.generate(expression, copy=False)  # the tree is ours: no copy
    plan.tree = expression
    # Views go in as subqueries by text: placeholders carry a random token, so
    # nothing the user wrote can match them (cheaper than CREATE VIEW per query).
    for placeholder, sql in sorted(plan.inline.items(), reverse=True):
        text = text.replace(f'"{placeholder}"', sql).replace(placeholder, sql)
    plan.sql = text
    return plan


def _snapshots(expression: exp.Expression, nodes: list[exp.Table], ctes: set[int],
               default_namespace: str | None, state_of: Callable[[str, str], TableState],
               user: str | None, files: FileStore, ranges: FileRanges | None,
               show_deleted: bool, frozen: Callable[[], contextlib.AbstractContextManager[Any]]
               | None) -> dict[tuple[str, str], tuple[tuple[Snapshot, dict[str, Any] | None], str]]:
    """The snapshot (and point) of every Cairn table `plan_query`'s loop will
    name, up to the first node it refuses, all at one moment."""
    wanted: list[tuple[str, str]] = []
    for node in nodes:
        if not isinstance(node.this, exp.Identifier):
            if isinstance(node.this, exp.Dot):
                break  # refused there
            continue
        if node.catalog:
            break
        if id(node) in ctes:
            continue
        ns = fold(node.db) or default_namespace
        if not ns:
            break
        if ns != "system":
            wanted.append((ns, fold(node.name)))

    def take(key: tuple[str, str]) -> tuple[TableState, int, tuple[Snapshot, Any], str]:
        st = state_of(*key)
        point = point_key(expression, st.columns, st.table.primary_key, nodes)
        if point is None and not waiting_allowed():
            raise WouldWait("not a point lookup")
        snap, pin = take_snapshot(st, user, files, point, ranges, show_deleted)
        return st, snap.table.schema_version, (snap, point), pin

    return at_one_moment(wanted, take, files.unpin, frozen)


def release(plan: Plan, files: FileStore) -> None:
    for token in plan.pins:
        files.unpin(token)
    plan.pins = []
