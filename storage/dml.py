"""INSERT, UPDATE and DELETE: every statement becomes new row versions in the
table's write buffer, written in one RocksDB put (so each statement is atomic).

UPDATE and DELETE find their rows with DuckDB over the table's current rows
(the same view a SELECT uses, so a USER table shows only the caller's rows),
then write new versions with newer sequence numbers; DELETE writes versions
with `_deleted = true`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pyarrow as pa
from sqlglot import exp

from catalog import Meta
from catalog.errors import AlreadyExists, InvalidArgument, PermissionDenied

from . import bufclock, keyfilter, owner_locks, sandbox, stopping
from . import keys as keys_mod
from .batch import BufBatch, OneRow
from .buffer import APPEND_ONLY, LARGE_VALUE, TableState, decode, encode, evict_overflow, seq_key
from .default_cells import DEFAULT, cell, cells, column_cells, default_row, is_default, values_rows
from .deleted_rule import LIVE_ONLY
from .names import fold
from .ports import Writer
from .query import Plan, Snapshot, quote, view_sql
from .resolve import Replaced
from .rowbuild import columns_table, one_row
from .targets import resolve
from .timing import TIMINGS, WouldWait, waiting_allowed
from .types import (
    DELETED,
    ID,
    OW,
    SEQ,
    UPDATED,
    USER,
    Column,
    arrow_type,
    default_value,
)
from .values import by_name, extra_arg, query_rows, query_values, unsupported_arg, with_of


def _owner(st: TableState, user: str | None) -> str | None:
    if st.table.table_type != "user":
        return None
    if user is None:
        raise PermissionDenied(
            f"Table '{st.table.namespace}.{st.table.name}' is a USER table: every row belongs "
            "to a user, and this request names none (send X-User-Id or a token)"
        )
    return user


def _name(st: TableState) -> str:
    return f"{st.table.namespace}.{st.table.name}"


# --- INSERT -----------------------------------------------------------------


def insert(engine: Writer, e: exp.Insert, user: str | None, ns: str | None) -> int:
    _unsupported(e, "INSERT", ("conflict", "returning", "overwrite", "alternative", "where",
                               "ignore", "using"))
    target = e.this
    names: list[str] | None = None
    if isinstance(target, exp.Schema):
        names = [fold(c.name) for c in target.expressions]
        target = target.this
    st = resolve(engine, target, ns)
    owner = _owner(st, user)
    source = e.expression
    if isinstance(source, exp.Values):
        rows = values_rows(engine, source, user, ns, _targets(st, names))
    elif source is None and e.args.get("default"):  # INSERT INTO t DEFAULT VALUES
        names, rows = default_row(e, names)
    elif isinstance(source, exp.Query):
        source = with_of(e, source)
        sandbox.check_query(source)  # type: ignore[arg-type]
        result = engine.select(source, user, ns)  # type: ignore[arg-type]
        if e.args.get("by_name"):  # INSERT INTO t BY NAME SELECT ...: the SELECT's names
            names = by_name(names, result.column_names)
        rows = query_rows(_targets(st, names), result)
    else:
        raise InvalidArgument("INSERT needs VALUES or a SELECT")
    return write_values(engine, st, names, rows, owner)


def _unsupported(e: exp.Expression, what: str, args: tuple[str, ...] | frozenset[str]) -> None:
    """INVALID_ARGUMENT naming the first of `args` the statement has (a tuple),
    or the first part it has outside `args` (a frozenset: what it may have)."""
    found = extra_arg(e, args) if isinstance(args, frozenset) else unsupported_arg(e, args)
    if found is not None:
        raise InvalidArgument(f"{what} ... {found} is not supported")


def _targets(st: TableState, names: list[str] | None) -> list[Column]:
    cols = {c["name"]: c for c in st.columns}
    if names is None:
        return [c for c in st.columns if not c.get("system")]
    out = []
    for n in names:
        col = cols.get(n)
        if col is None:
            raise InvalidArgument(f"Column '{n}' does not exist in table {_name(st)}")
        if col.get("system"):
            raise InvalidArgument(f"Column '{n}' is set by Cairn and cannot be written")
        if col in out:
            raise InvalidArgument(f"Column '{n}' is named twice")
        out.append(col)
    return out


def write_values(
    engine: Writer, st: TableState, names: list[str] | None, rows: list[list[Any]], owner: str | None
) -> int:
    if not rows:
        return 0
    with TIMINGS.timed("insert"), owner_locks.whole(st, owner):
        targets = _targets(st, names)
        n = len(rows)
        data: dict[str, Any] = {c["name"]: [] for c in st.columns if not c.get("system")}
        given = {c["name"] for c in targets}
        for i, row in enumerate(rows):
            if len(row) != len(targets):
                raise InvalidArgument(
                    f"row {i + 1} has {len(row)} values but the table takes {len(targets)} "
                    f"({', '.join(c['name'] for c in targets)})")
        cells(targets, rows, data)
        for col in st.columns:
            name = col["name"]
            if name in given or name in (ID, UPDATED, DELETED) and col.get("system"):
                continue
            value = default_value(col)
            if value is None and col.get("not_null"):
                raise InvalidArgument(
                    f"Column '{name}' in row 1 is NOT NULL and has no DEFAULT: give it a value"
                )
            data[name] = [value] * n
        return _append(engine, st, data, n, owner, check_keys=True)


def _append(
    engine: Writer,
    st: TableState,
    data: dict[str, Any],
    n: int,
    owner: str | None,
    *,
    check_keys: bool,
    overwrite: bool = False,
) -> int:
    """Add `n` new row versions (columns in `data`) to the buffer. Hold write_lock."""
    first = engine.catalog.next_seq(n)
    # One row of Python values (a one-row INSERT ... VALUES): the system
    # columns as one-value lists too, and the row converted in one go (one_row).
    one = n == 1 and all(type(v) is list for v in data.values())
    seqs: Any = [first] if one else pa.array(range(first, first + n), pa.int64())
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    data[SEQ] = seqs
    if OW not in data:
        data[OW] = [overwrite] if one else pa.array([overwrite] * n, pa.bool_())
    if st.table.table_type == "user":
        data[USER] = [owner] * n
    for col in st.columns:
        if not col.get("system"):
            continue
        if col["name"] == ID and ID not in st.table.primary_key:
            continue
        if col["name"] == ID and not overwrite:
            data[ID] = seqs
        elif col["name"] == UPDATED:
            data[UPDATED] = [now] if one else pa.array([now] * n, pa.timestamp("us"))
        elif col["name"] == DELETED and DELETED not in data:
            data[DELETED] = [False] if one else pa.array([False] * n, pa.bool_())
    schema = st.row_schema()
    rows = one_row(schema, st.row_struct(), data) if one else None
    # The row's values, which the buffer keeps instead of the table (OneRow).
    values = tuple([data[f.name][0] for f in schema]) if rows is not None else None
    if rows is None:
        rows = columns_table(schema, data, _name(st))
    # One row's integer, text or boolean key as given: what Arrow reads back.
    given = [[data[k][0]] for k in st.table.primary_key] if one and _plain_key(st) else None
    data.clear()  # the caller's columns: from here only `rows` holds them
    # A table's nbytes takes ~30 µs. A row just converted shares no buffer,
    # so its nbytes (the bytes its values use) is at most its buffers' size.
    large: bool | None = (rows.nbytes >= LARGE_VALUE if not one
             else rows.get_total_buffer_size() >= LARGE_VALUE and rows.nbytes >= LARGE_VALUE)
    if large:
        values = None
        # Contiguous, so the buffer's view of the encoded bytes has a few large
        # batches (a query's answer comes in ~150-row pieces) and neither a
        # query of the buffer nor its flush copies them whole again.
        rows = rows.combine_chunks()
    if overwrite:  # new versions of rows found (UPDATE, DELETE): each keeps its key
        keys_mod.refuse_null(st.table.primary_key, rows)
    probe: list[Any] | None = None
    if check_keys and st.table.primary_key != [ID]:
        with TIMINGS.timed("check_keys"):
            found, probe = _check_keys(engine, st, rows, owner, given)
        if found:
            pk = st.table.primary_key
            keys = zip(*[rows.column(k).to_pylist() for k in pk], strict=False)
            flags = pa.array([k in found for k in keys], pa.bool_())
            rows = rows.set_column(rows.schema.get_field_index(OW), OW, flags)
            values = None
            overwrite = True
            large = None  # new rows: encode measures them
    with TIMINGS.timed("commit"):
        ts = bufclock.now()  # the clock stream TTLs and flush intervals age rows by
        with TIMINGS.timed("encode"):
            value = encode(rows, st.schema.version, ts, owner, plain=True, large=large)
        if len(value) >= LARGE_VALUE:
            # The buffer keeps a view of the stored bytes (what a restart
            # decodes), not a second copy: the query's rows are freed here,
            # before RocksDB makes its two copies (batch and memtable).
            rows = decode(b"", value).rows
        _commit(engine, st, rows, value, ts, owner, overwrite, probe, first, values)
    return n


_PLAIN_KEY_TYPES = frozenset({"SMALLINT", "INT", "BIGINT", "TEXT", "BOOLEAN"})


def _plain_key(st: TableState) -> bool:
    """Whether every key column holds values Arrow gives back unchanged
    (coerced ints, str, bool; not a DECIMAL's scale or a REAL's precision)."""
    pk = st.table.primary_key
    return all(c["type"] in _PLAIN_KEY_TYPES for c in st.columns if c["name"] in pk)


def _check_keys(engine: Writer, st: TableState, rows: pa.Table, owner: str | None,
                given: list[list[Any]] | None = None) -> tuple[set[tuple[Any, ...]], list[Any] | None]:
    """ALREADY_EXISTS if a key is repeated or already live; else the keys the
    rows bring back from soft deletion (new versions of an existing key), and
    the keys as the buffer's key set holds them (None if it cannot).

    Most INSERTs bring keys that have no version anywhere: the buffer's key set,
    the files' key ranges and filters (keys.py, keyfilter.py) prove it without DuckDB. The
    exact check runs only over what could hold a key. `given`: the key
    columns' values, if the caller has them as Arrow would give them back."""
    pk = st.table.primary_key
    cols = given if given is not None else [rows.column(k).to_pylist() for k in pk]
    if not _plain_key(st):  # a DOUBLE or REAL key may be NaN
        keys_mod.refuse_nan(pk, cols)
    seen: dict[tuple[Any, ...], int] = {}
    for i, key in enumerate(zip(*cols, strict=False)):
        if key in seen:
            raise AlreadyExists(
                f"duplicate primary key {keys_mod.shown_key(pk, key)} in rows {seen[key] + 1} and {i + 1}"
            )
        seen[key] = i
    user_table = st.table.table_type == "user"
    fast = keys_mod.settable(st.columns, pk)
    probe = keys_mod.probe_keys(cols, owner, user_table) if fast else None
    bounds = keys_mod.bounds_of(cols, st.columns, pk)
    ranges, filters = engine.file_ranges, engine.file_ranges.filters
    hashed = keyfilter.probe_of(cols, rows, st.columns, pk) if st.files else None
    while True:  # one pass when every file's key range and filter are known (the usual case)
        with st.lock:
            files = [f for f in st.files if not user_table or f.user_id == owner]
            unknown = ranges.missing(files)
            in_range, unbuilt = ([], []) if unknown else ranges.in_range(files, pk, cols, bounds,
                                                                         hashed)
            if not unknown and not unbuilt:
                candidates = filters.select(in_range, hashed, len(files) - len(in_range))
                in_buffer = probe is None or st.keys.may_hold(probe, st.batches, pk,
                                                              user_table)
                if not candidates and not in_buffer:
                    return set(), probe
                versions = (keys_mod.buffered_versions(
                    st.keys, st.batches, pk, probe, seen, owner=owner, user_table=user_table,
                    has_deleted=any(c["name"] == DELETED for c in st.columns),
                    min_ts=st.ttl_floor(), append_only=st.append_only)
                    if not candidates and probe is not None else None)
                if versions is not None:
                    break
                snap = Snapshot(
                    table=st.table,
                    columns=list(st.columns),
                    primary_key=list(pk),
                    files=candidates,
                    buffer=(st.buffer_table(owner, min_ts=st.ttl_floor()) if in_buffer
                            else pa.schema([]).empty_table()),
                    append_only=st.append_only,
                )
                token = engine.files.pin([f.path for f in candidates])
                break
        if not waiting_allowed():  # reading files is I/O: not on the event loop
            raise WouldWait("file footers")
        for f in unknown:  # files without recorded ranges: read footers once, unlocked
            ranges.learn(f, engine.files.abs(f.path), st.columns, pk)
        for f in unbuilt:  # files without a key filter (restored, found at start): built once
            filters.learn(f.path, engine.files.abs(f.path), st.columns, pk)
    if versions is not None:  # only buffered versions could hold a key: read off the index
        alive = [k for k, deleted in versions.items() if not deleted]
        if alive:
            raise AlreadyExists(f"duplicate primary key {keys_mod.shown_key(pk, alive[0])} in table "
                                f"{_name(st)} (row {seen[alive[0]] + 1})")
        return set(versions), probe
    plan = Plan(pins=[token], rows=rows.num_rows + snap.buffer.num_rows
                + sum(f.rows for f in candidates))
    tag = uuid.uuid4().hex[:12]
    keys_name, buf_name = f"__cairn_{tag}_keys", f"__cairn_{tag}_b0"
    plan.arrow.append((keys_name, rows.select(pk)))
    if snap.buffer.num_rows:
        plan.arrow.append((buf_name, snap.buffer))
    has_deleted = any(c["name"] == DELETED for c in snap.columns)
    flag = quote(DELETED) if has_deleted else "false"
    using = ", ".join(map(quote, pk))
    view = view_sql(snap, buf_name, engine.files, show_deleted=True)
    plan.sql = (f"SELECT {using}, {flag} AS \"#del\" FROM ({view}) AS __t0 "
                f"SEMI JOIN {keys_name} USING ({using})")
    plan.names = {"__t0": _name(st), buf_name: _name(st), keys_name: "the new keys"}
    found = engine.run_plan(plan).to_pylist()
    live = [r for r in found if not r["#del"]]
    if live:
        key = tuple(live[0][k] for k in pk)
        raise AlreadyExists(
            f"duplicate primary key {keys_mod.shown_key(pk, key)} in table {_name(st)} (row {seen[key] + 1})"
        )
    return {tuple(r[k] for k in pk) for r in found}, probe


def _write(b: Any) -> None:
    with TIMINGS.timed("rocksdb_write"):
        b.commit()


def _commit(
    engine: Writer, st: TableState, rows: pa.Table, value: bytes, now: float,
    owner: str | None, overwrite: bool, probe: list[Any] | None = None,
    seq0: int | None = None, values: tuple[Any, ...] | None = None,
) -> None:
    """Store `value` (the encoded `rows`, written at `now`) as one buffer
    entry (`seq0`: the rows' first sequence number, if the caller knows it;
    `values`: the one row's values `rows` was made of, kept instead of it)."""
    if probe is None and st.table.primary_key != [ID] and keys_mod.settable(
        st.columns, st.table.primary_key
    ):
        probe = keys_mod.probe_keys([rows.column(k).to_pylist() for k in st.table.primary_key],
                                    owner, st.table.table_type == "user")
    if seq0 is None:
        seq0 = rows.column(SEQ)[0].as_py()
    key = seq_key(seq0)
    b = engine.catalog.batch()
    with st.lock:
        if st.dropped:  # dropped behind the write_lock (registry.forget): run again
            raise Replaced(_name(st))
        stopping.commit_point()  # cancelled by now: nothing is written
        if overwrite and st.append_only:  # small records first: the big value then
            b.delete(Meta, APPEND_ONLY + st.uid)  # sizes the batch, never doubles it
        b.put_raw(st.family, st.prefix + key, value)
        evicted = evict_overflow(st, rows.num_rows, b)
        engine.changes.commit_rows(st.table.namespace, b, st.table.name,
                                   None if st.table.table_type == "stream" else value, _write)
        for k, batch in evicted.items():
            if batch is None:
                st.batches.pop(k, None)
            else:
                st.batches[k] = batch
        if evicted:
            st.keys.removed(st.batches, st.table.primary_key, st.table.table_type == "user")
        if any(batch is not None for batch in evicted.values()):
            # A batch cut in part keeps its key: a cached conversion whose
            # keys lead the buffer still held the cut rows (they were served,
            # a key twice once it was written again).
            st.forget_conversions()
        st.batches[key] = (BufBatch(key, st.schema.version, now, owner, rows) if values is None
                           else OneRow(key, st.schema.version, now, owner, values,
                                       st.row_schema(), st.row_struct()))
        if probe is not None:
            st.keys.add(probe, key)
        if overwrite:
            st.append_only = False


def insert_arrow(engine: Writer, st: TableState, rows: pa.Table, user: str | None) -> int:
    """Bulk load: Arrow columns by name, cast to the column types."""
    owner = _owner(st, user)
    with owner_locks.whole(st, owner):
        data: dict[str, Any] = {}
        for col in st.columns:
            name = col["name"]
            if col.get("system"):
                continue
            if name in rows.column_names:
                try:
                    arr = rows.column(name).cast(arrow_type(col))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                    raise InvalidArgument(f"Column '{name}': {exc}") from None
            else:
                arr = pa.array([default_value(col)] * rows.num_rows, arrow_type(col))
            if col.get("not_null") and arr.null_count:
                raise InvalidArgument(f"Column '{name}' is NOT NULL but has {arr.null_count} NULLs")
            data[name] = arr
        return _append(engine, st, data, rows.num_rows, owner, check_keys=True)


# --- UPDATE and DELETE --------------------------------------------------------


def _matching(
    engine: Writer, st: TableState, node: exp.Table, where: exp.Expression | None,
    extra: list[exp.Expr], user: str | None, ns: str | None,
) -> pa.Table:
    """The rows a WHERE finds, by a SELECT made of the statement's own trees:
    printed once, as a SELECT's are (printed and parsed again, `x IN [..]` and
    `f(json_extract(j, 'a'))` came back meaning another thing)."""
    star = exp.Column(this=exp.Star(), table=exp.to_identifier(node.alias_or_name, quoted=True))
    # The table's name and alias only (targets.resolve refused anything more).
    table = exp.Table(**{k: v.copy() for k, v in node.args.items()
                         if k in ("this", "db", "alias") and v})
    table.meta[LIVE_ONLY] = True  # live rows change; shows deleted ones (deleted_rule.DeletedRule)
    tree = exp.Select(expressions=[star, *extra]).from_(table, copy=False)
    if where is not None:
        tree.set("where", where.copy())
    # One DuckDB thread: each thread holds a row group of every column it reads
    # (16 MB of a wide column), and the scan of a wide table was the statement's
    # RSS peak (docs/performance.md). Out of that DuckDB's memory: the main one.
    return engine.select(tree, user, ns, one_thread=True)


def update(engine: Writer, e: exp.Update, user: str | None, ns: str | None) -> int:
    st = resolve(engine, e.this, ns)
    owner = _owner(st, user)
    if st.table.table_type == "stream":
        raise InvalidArgument(f"Table '{_name(st)}' is a STREAM table: rows cannot be updated")
    _unsupported(e, "UPDATE", frozenset({"this", "expressions", "where"}))
    where = e.args.get("where")
    if where is not None:
        sandbox.check_fragment(where)
    with owner_locks.statement(st, owner):  # a USER table's write_lock: at the commit only
        table, schema = st.table, st.schema
        cols = {c["name"]: c for c in st.columns}
        sets: list[tuple[Column, exp.Expression]] = []
        for eq in e.expressions:
            if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
                raise InvalidArgument("UPDATE needs SET column = value, ...")
            name = fold(eq.this.name)
            col = cols.get(name)
            if col is None:
                raise InvalidArgument(f"Column '{name}' does not exist in table {_name(st)}")
            if col.get("system"):
                raise InvalidArgument(f"Column '{name}' is set by Cairn and cannot be updated")
            if col.get("primary_key"):
                raise InvalidArgument(f"Column '{name}' is part of the primary key and cannot be updated")
            if any(c is col for c, _ in sets):
                raise InvalidArgument(f"Column '{name}' is set twice")
            sandbox.check_fragment(eq.expression)
            sets.append((col, eq.expression))
        extra = [exp.alias_(exp.Paren(this=exp.null() if is_default(v) else v.copy()),
                            f"#set{i}", quoted=True) for i, (_, v) in enumerate(sets)]
        found = _matching(engine, st, e.this, where, extra, user, ns)
        found = keys_mod.reachable(st.table.primary_key, found, _name(st), "updated")
        n = found.num_rows
        if n == 0:
            return 0
        data: dict[str, Any] = {c["name"]: found.column(c["name"]) for c in st.columns}
        for i, (col, expr) in enumerate(sets):
            if is_default(expr):
                data[col["name"]] = [cell(col, DEFAULT, 1)] * n
                continue
            values = query_values([col], found.select([f"#set{i}"]))[0]
            data[col["name"]] = column_cells(col, values)
        del found  # _append frees the rows' columns once encoded
        data[DELETED] = pa.array([False] * n, pa.bool_()) if DELETED in cols else None
        if data[DELETED] is None:
            del data[DELETED]
        with owner_locks.committing(st, table, schema):
            return _append(engine, st, data, n, owner, check_keys=False, overwrite=True)


def delete(engine: Writer, e: exp.Delete, user: str | None, ns: str | None) -> int:
    st = resolve(engine, e.this, ns)
    owner = _owner(st, user)
    if st.table.table_type == "stream":
        raise InvalidArgument(f"Table '{_name(st)}' is a STREAM table: rows cannot be deleted")
    _unsupported(e, "DELETE", frozenset({"this", "where"}))
    where = e.args.get("where")
    if where is not None:
        sandbox.check_fragment(where)
    with owner_locks.statement(st, owner):  # a USER table's write_lock: at the commit only
        table, schema = st.table, st.schema
        found = _matching(engine, st, e.this, where, [], user, ns)
        found = keys_mod.reachable(st.table.primary_key, found, _name(st), "deleted")
        n = found.num_rows
        if n == 0:
            return 0
        data: dict[str, Any] = {c["name"]: found.column(c["name"]) for c in st.columns}
        del found  # _append frees the rows' columns once encoded
        data[DELETED] = pa.array([True] * n, pa.bool_())
        with owner_locks.committing(st, table, schema):
            return _append(engine, st, data, n, owner, check_keys=False, overwrite=True)
