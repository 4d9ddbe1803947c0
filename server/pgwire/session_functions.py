"""PostgreSQL's session functions in a catalog query (pgcatalog.py) by their
values: `version()`, `current_schema()`, `current_setting()`, `set_config()`,
`format_type()`, `pg_table_is_visible()`, the privilege checks, … each one
a function of the sqlglot node and the session (`SessionInfo`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from sqlglot import exp

from . import chatter, regtypes, relations
from .errors import PgError

SERVER_VERSION = "15.0"
VERSION = f"PostgreSQL {SERVER_VERSION} (Cairn) on x86_64-pc-linux-gnu, compiled by Cairn, 64-bit"
VISIBLE = "cairn_visible"  # pg_table_is_visible()'s relations


@dataclass
class SessionInfo:
    """What session functions answer with."""

    user: str
    pid: int
    namespace: str | None
    settings: dict[str, str]
    host: str
    port: int
    # set_config()'s (name, value) of the query last run, checked: the
    # connection applies them once the query has run (chatter.Settings.apply).
    pending: list[tuple[str, str]] = field(default_factory=list)
    # The schemas (pg_namespace's names) of the query last run (pgcatalog.py sets them)
    schemas: frozenset[str] = frozenset()


def lit(value: Any) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, int):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _arg(node: exp.Expression, i: int) -> exp.Expression | None:
    args = list(node.expressions) if isinstance(node, exp.Anonymous) else [
        a for a in node.iter_expressions()]
    return args[i] if i < len(args) else None


def _search_path(info: SessionInfo) -> list[str]:
    """search_path's schemas that exist, in its order, each once (PostgreSQL's
    `current_schemas(false)`: a schema that does not exist is skipped). Its
    names fold as `chatter.path_names` folds them; `"$user"` names none
    (Cairn reads no namespace of the user's name)."""
    names = chatter.path_names(info.settings.get("search_path", ""))
    return list(dict.fromkeys(name for name in names if name in info.schemas))


def _current_schema(info: SessionInfo) -> exp.Expression:
    """The namespace unqualified names mean (chatter.search_namespace), NULL if it
    does not exist; with none named, search_path's first schema that exists (its
    `pg_catalog`), as PostgreSQL's, NULL if none does."""
    if info.namespace is not None:
        return lit(info.namespace if info.namespace in info.schemas else None)
    return lit(next(iter(_search_path(info)), None))


def _current_schemas(node: exp.Expression, info: SessionInfo) -> exp.Expression:
    """current_schemas(include_implicit): search_path's schemas that exist, and
    pg_catalog first if asked for and not among them, as PostgreSQL's."""
    schemas = _search_path(info)
    implicit = ([] if "pg_catalog" in schemas else ["pg_catalog"]) + schemas

    def array(names: list[str]) -> exp.Expression:
        return exp.cast(exp.Array(expressions=[lit(n) for n in names]), "VARCHAR[]")

    flag = _arg(node, 0)
    if isinstance(flag, exp.Boolean):
        return array(implicit if flag.this else schemas)
    if flag is None or isinstance(flag, exp.Null):
        return exp.cast(exp.null(), "VARCHAR[]")
    return exp.case().when(flag.is_(exp.null()), exp.cast(exp.null(), "VARCHAR[]")).when(
        flag, array(implicit)).else_(array(schemas))


def _setting(node: exp.Expression, info: SessionInfo) -> exp.Expression:
    a = _arg(node, 0)
    if isinstance(a, exp.Literal) and a.is_string:
        return lit(info.settings.get(a.this.lower()))
    return exp.null()


def _set_config(node: exp.Expression, info: SessionInfo) -> exp.Expression:
    """set_config(name, value, is_local) as SET: a setting SET refuses is its
    error (22023), one it takes is applied once the query has run and its
    value as held returned (the value was echoed, applied or not). `is_local`
    is SET LOCAL's, which Cairn takes as SET. A NULL (a parameter while a
    statement is described) sets nothing."""
    args = [_arg(node, i) for i in (0, 1)]
    texts = [a.this if isinstance(a, exp.Cast) else a for a in args]
    if any(a is None or isinstance(a, exp.Null) for a in texts):
        return exp.null()
    if not all(isinstance(a, exp.Literal) and a.is_string for a in texts):
        raise PgError("0A000", "set_config() takes a name and value written as strings (or "
                               "parameters): Cairn does not compute them")
    name, value = (str(cast(exp.Literal, a).this) for a in texts)
    value = chatter.checked(name.lower(), value, info.user)
    info.pending.append((name, value))
    return lit(value)


def _format_type(node: exp.Expression, info: SessionInfo) -> exp.Expression:
    oid, mod = _arg(node, 0), _arg(node, 1)
    return exp.Anonymous(this="cairn_format_type",
                         expressions=[oid or exp.null(), mod or exp.Literal.number(-1)])


FUNCTIONS: dict[str, Any] = {
    "version": lambda n, i: lit(VERSION),
    "current_version": lambda n, i: lit(VERSION),
    "current_database": lambda n, i: lit(relations.DATABASE),
    "current_catalog": lambda n, i: lit(relations.DATABASE),
    "current_schema": lambda n, i: _current_schema(i),
    "current_schemas": lambda n, i: _current_schemas(n, i),
    "pg_backend_pid": lambda n, i: lit(i.pid),
    "pg_advisory_unlock_all": lambda n, i: exp.null(),  # Cairn takes no advisory locks
    "current_setting": _setting,
    "set_config": _set_config,
    "inet_server_addr": lambda n, i: lit(i.host),
    "inet_server_port": lambda n, i: lit(i.port),
    "inet_client_addr": lambda n, i: exp.null(),
    "pg_is_in_recovery": lambda n, i: lit(False),
    "pg_get_userbyid": lambda n, i: lit("cairn"),
    "pg_encoding_to_char": lambda n, i: lit("UTF8"),
    "pg_table_is_visible": lambda n, i: lit(True) if i.namespace is None else (
        _arg(n, 0) or exp.null()).isin(query=exp.select("oid").from_(VISIBLE)),  # relations
    "pg_type_is_visible": lambda n, i: lit(True),
    "pg_function_is_visible": lambda n, i: lit(True),
    "pg_collation_is_visible": lambda n, i: lit(True),
    # SQLAlchemy 2.x's get_columns (an identity's options): DuckDB's json_object
    "json_build_object": lambda n, i: exp.Anonymous(this="json_object",
                                                    expressions=list(n.expressions)),
    "pg_get_expr": lambda n, i: _arg(n, 0) or exp.null(),
    "format_type": _format_type,
    "quote_ident": lambda n, i: _arg(n, 0) or exp.null(),
    "txid_current": lambda n, i: lit(1),
    "pg_relation_is_publishable": lambda n, i: lit(False),
    "pg_total_relation_size": lambda n, i: lit(0),
    "pg_relation_size": lambda n, i: lit(0),
    "pg_table_size": lambda n, i: lit(0),
    "pg_indexes_size": lambda n, i: lit(0),
    "pg_database_size": lambda n, i: lit(0),
    "pg_tablespace_size": lambda n, i: lit(0),  # psql's \db+
}
FUNCTIONS["to_regtype"] = lambda n, i: regtypes.to_regtype(_arg(n, 0))
for _name in ("pg_get_indexdef", "pg_get_constraintdef"):
    FUNCTIONS[_name] = lambda n, i: exp.Anonymous(
        this="cairn_definition", expressions=[_arg(n, 0) or exp.null()])
for _name in ("obj_description", "col_description", "shobj_description", "pg_get_viewdef",
              "pg_get_triggerdef", "pg_get_functiondef",  # psql's \sf, \ef
              "pg_get_statisticsobjdef_columns", "pg_get_partkeydef", "pg_get_function_result",
              "pg_get_function_arguments", "pg_get_ruledef", "pg_get_serial_sequence",
              "pg_tablespace_location", "pg_get_partition_constraintdef"):
    FUNCTIONS[_name] = lambda n, i: exp.null()
for _name in ("has_table_privilege", "has_schema_privilege", "has_database_privilege",
              "has_column_privilege", "has_any_column_privilege", "has_function_privilege",
              "has_sequence_privilege", "pg_has_role"):
    FUNCTIONS[_name] = lambda n, i: lit(True)
