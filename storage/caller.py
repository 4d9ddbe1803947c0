"""The caller's identity in a query: `current_user`, `session_user`,
`current_role`, `user` (and `user()`, `current_user()`, ...) are DuckDB's own
'duckdb' unless rewritten; plan_query puts the caller (the X-User-Id header,
the token's user, the PostgreSQL user; NULL without one) in their place."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from sqlglot import exp

from catalog.errors import CairnError

from .buffer import TableState
from .names import fold

# What DuckDB answers 'duckdb' for (its macros current_user, session_user,
# current_role, user; a bare word, quoted or not, that binds to no column), and
# PostgreSQL the caller, by the name PostgreSQL gives its result column.
_USER_NODES: dict[type[exp.Expression], str] = {
    exp.CurrentUser: "current_user", exp.SessionUser: "session_user",
    exp.CurrentRole: "current_role"}
USER_WORDS = frozenset({"current_user", "session_user", "current_role", "user"})


def user_word(node: exp.Expression) -> str | None:
    """The name of the caller's identity `node` spells, or None if it is no such."""
    kind = _USER_NODES.get(type(node))
    if kind is not None:
        return kind
    if isinstance(node, exp.Column) and not node.table and isinstance(node.this, exp.Identifier):
        name = node.name.lower()
        return name if name in USER_WORDS else None
    if isinstance(node, exp.Anonymous) and not node.expressions and (
            str(node.this).lower() in USER_WORDS):  # user()
        return str(node.this).lower()
    return None


def names_a_user_word(select: exp.Expression) -> bool:
    """Does a point SELECT name a user word (`SELECT user FROM t WHERE id = 1`)?"""
    where = select.args["where"].this
    return any(user_word(c) for c in (*select.expressions, where.this))


def columns_named(expression: exp.Expression, nodes: list[exp.Table], ctes: set[int],
                   default_namespace: str | None,
                   state_of: Callable[[str, str], TableState]) -> set[str]:
    """Lower-case names a bare word of the query may bind to as a column: the
    columns of the Cairn tables it names, and every alias it gives."""
    names = {fold(a.alias) for a in expression.find_all(exp.Alias)}
    for alias in expression.find_all(exp.TableAlias):
        names |= {fold(c.name) for c in alias.columns}
    for node in nodes:
        db = fold(node.db) or default_namespace
        if id(node) in ctes or not db or db == "system" or not isinstance(
                node.this, exp.Identifier):
            continue
        with contextlib.suppress(CairnError):  # the loop below says what is wrong
            names |= {c["name"].lower() for c in state_of(db, fold(node.name)).columns}
    return names


def the_caller(users: list[exp.Expression], user: str | None, taken: set[str]) -> None:
    """Put the caller in place of each of `users` (DuckDB's are 'duckdb': an
    INSERT stored it), named as PostgreSQL names it where it is a result column
    (`SELECT current_user` is a column current_user, not one named after the
    caller); a bare word the query has a column of that name for stays that column."""
    for node in users:
        name = user_word(node)
        if name is None or isinstance(node, exp.Column) and name in taken:
            continue
        value = exp.Literal.string(user) if user is not None else exp.null()
        parent = node.parent
        if isinstance(parent, exp.Select) and node.arg_key == "expressions":
            node.replace(exp.alias_(value, name, quoted=True))
        else:
            node.replace(value)
