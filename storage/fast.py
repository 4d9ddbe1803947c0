"""The parser's fast path's two statements run from their typed descriptions
(sqlgrammar/fastpath.py), without a sqlglot tree.

An INSERT of literals (`insert_rows`, one row or many) goes straight to `dml.write_values`, with
the names and Python values `dml.insert` would read off its tree: so the
same rows, the same errors.

A point SELECT (`select`), `SELECT a, b FROM [ns.]t WHERE pk = literal` as
the parser's fast path reads it (`FastSelect`: names and the literal),
is answered off the snapshot the way `Engine.query` answers the same
statement's tree when `plan_query` finds a point lookup and `direct.answer`
its row: the same `take_snapshot`, the same `direct.from_snapshot`, the same
plan through `run_plan` (limits, pins, JSON marks). Whatever that path would
not answer off the snapshot, or would refuse, returns None before anything is
visible, and the caller runs the statement's tree the normal way: a system
table, no namespace, an unknown table, a USER table with no user, a key that
is not the whole primary key or does not read as its type, a column that is
not a plain lower-case column of the table (`direct._own_column`), a name
twice, a file or several versions to read. So every answer is the one the
tree would have given, and every error is the tree's own
(tests/storage/test_point_select.py)."""

from __future__ import annotations

import re
from typing import Any, Protocol

import pyarrow as pa

from catalog.errors import CairnError, InvalidArgument, PermissionDenied

from . import direct, dml
from .buffer import TableState
from .files import FileStore
from .keys import FileRanges
from .limits import ResultLimits
from .pointcache import PointCache
from .ports import Writer
from .query import Plan, answered, release, take_snapshot
from .resolve import Replaced, written
from .timing import waiting_allowed

_INT_TYPES = ("SMALLINT", "INT", "BIGINT")


class PointEngine(Protocol):
    files: FileStore
    file_ranges: FileRanges
    points: PointCache

    def state(self, namespace: str, name: str) -> TableState: ...

    def run_plan(self, plan: Plan, timeout: float | None = None,
                 limits: ResultLimits | None = None) -> pa.Table: ...


def key_value(typ: str | None, text: str, is_string: bool, negative: bool) -> Any:
    """The key a literal names for a column of type `typ`, as `query._literal`
    reads the literal's tree node (and `direct._value`, the same); None if
    the lookup is not a point lookup to them."""
    if typ in _INT_TYPES and not is_string and re.fullmatch(r"[0-9]+", text):
        return -int(text) if negative else int(text)
    if typ == "TEXT" and is_string and not negative:
        return text
    return None


def select(engine: PointEngine, db: str | None, table: str, columns: list[str], key: str,
           text: str, is_string: bool, negative: bool, user: str | None, ns: str | None,
           timeout: float | None = None, limits: ResultLimits | None = None) -> pa.Table | None:
    """The answer, or None: the tree's path decides (see the module's doc)."""
    name = table.lower()
    db = db.lower() if db else None
    if db == "system" or key != key.lower() or (not is_string and len(text) >= 39):
        return None  # 39+ characters: a number the tree's check may refuse (literal_range)
    if any(c != c.lower() for c in columns) or len(set(columns)) != len(columns):
        return None
    target = db or ns
    if not target:
        return None
    try:
        st = engine.state(target, name)
    except CairnError:
        return None
    if st.table.primary_key != [key]:
        return None
    types = {c["name"]: c["type"] for c in st.columns}
    if any(c not in types for c in columns):
        return None
    value = key_value(types.get(key), text, is_string, negative)
    if value is None:
        return None
    point = {key: value}
    try:
        snap, pin = take_snapshot(st, user, engine.files, point, engine.file_ranges, False)
    except (CairnError, Replaced):  # a USER table and no user; or the table was
        return None  # replaced since `state`: the tree's path resolves it again
    plan = Plan(pins=[pin])
    try:
        plan.answer = direct.from_snapshot(snap, point, columns)
        if plan.answer is None:
            plan.answer = direct.from_files(snap, point, columns, engine.points,
                                            engine.files.abs, waiting_allowed())
    except BaseException:  # as plan_query: no pin left behind
        release(plan, engine.files)
        raise
    if plan.answer is None:
        release(plan, engine.files)
        return None
    return engine.run_plan(answered(plan, snap, f"{target}.{name}"), timeout, limits)


def insert_rows(engine: Writer, db: str | None, table: str, columns: list[str] | None,
                rows: list[list[Any]], user: str | None, ns: str | None) -> int:
    """An INSERT of literals read without a tree, one row or many (the
    parser's fast path, sqlgrammar/fastpath.py and fastrows.py `FastInsert`):
    what `dml.insert` does with that statement's tree, step for step. Its
    names are plain words (nothing the sandbox refuses), folded to lower case
    here as `fold_names` folds the tree's; its values are Python values as
    `values.values_rows` reads the tree's literals, so `dml.write_values`
    gets the same rows and raises the same errors, naming the same row."""
    name = table.lower()
    db = db.lower() if db else None
    if db == "system":
        raise PermissionDenied(f"system.{name} is read-only")
    target = db or ns
    if not target:
        raise InvalidArgument(f"no namespace given for table '{name}'")
    names = [c.lower() for c in columns] if columns is not None else None

    def write() -> int:
        st = engine.state(target, name)
        return dml.write_values(engine, st, names, rows, dml._owner(st, user))
    return written(write)
