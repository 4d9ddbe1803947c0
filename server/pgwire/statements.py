"""What the extended query protocol keeps: prepared statements and portals;
reading a query string, writing in a Bind's parameters, the columns of a
table to infer parameter types by, and those types."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from catalog.errors import CairnError, InvalidArgument
from sqlgrammar.splitter import split_script
from storage import system_tables
from storage.names import fold
from storage.types import type_label

from ..result import cairn_type
from ..state import Cairn
from . import arrays, messages, params, type_oids
from . import types as t
from .errors import PgError
from .kept import FORMAT_BYTES, OID_BYTES, SPOT_BYTES, columns_size
from .results import Reply, formats_for
from .types import decode_param

# A text not scanned for a catalog query (a big INSERT's rows): a shortcut
# only. What a statement is (whether Describe may run it, its command tag)
# is the parser's word (describe.reads, results.tag_of).
WRITE = re.compile(r"\s*(?:INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@dataclass
class Prepared:
    sql: str
    oids: list[int]
    spots: params.Spots  # where its `$n` are, found once at Parse
    described: list[tuple[str, int]] | None = None  # what Describe(statement) promised
    reads: bool | None = None  # only reads: Describe(portal) runs it (describe.reads)
    targets: list[params.Target | None] = field(default_factory=list)  # params.check()
    texts: dict[int, bool | str] = field(default_factory=dict)  # params.infer(): as text

    def size(self) -> int:
        """The bytes it keeps, as the connection's budget counts them (kept.py):
        the columns Describe found too (1,604 of them, 320 KB, were kept
        uncounted for each 90-byte statement)."""
        return (len(self.sql) + OID_BYTES * len(self.oids) + SPOT_BYTES * len(self.spots)
                + columns_size(self.described))


@dataclass
class Portal:
    prepared: Prepared
    sql: str
    formats: list[int]
    reply: Reply | None = None
    described: bool = False
    sent: int = 0  # rows already sent (Execute with a row limit)
    done: bool = False  # executed, with no rows: PostgreSQL's PORTAL_DONE

    def size(self) -> int:
        """The bytes it keeps besides rows (those are bounded apart, kept.py):
        its text, its result format codes (65,535 of them were kept uncounted)
        and, once run, its answer's columns."""
        return (len(self.sql) + FORMAT_BYTES * len(self.formats)
                + columns_size(self.reply.columns if self.reply is not None else None))


def split(sql: str) -> list[Any]:
    return list(split_script(sql))


def text(body: messages.Payload) -> str:
    """A query string; text that is not UTF-8 is refused (22021), not fatal."""
    end = body.data.find(b"\x00", body.pos)
    if end < 0:
        raise messages.ProtocolViolation("invalid string in message: query not terminated")
    raw = body.data[body.pos:end]
    body.pos = end + 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PgError(
            "22021", f"invalid byte sequence for encoding \"UTF8\" at byte {exc.start}"
        ) from None


# What a parameter counts as, in characters of text, when a Bind decides to
# run on a statement thread: 65,535 NULLs (262 KB of message, no value bytes)
# took ~100 ms of the event loop each, while only value bytes were counted.
PARAMETER_WORK = 16


def bind_work(prepared: Prepared, body: messages.Payload) -> int:
    """How much a Bind costs to read and write in, in characters: its
    statement's text, its message (values and format codes) and its
    parameters, NULL or not."""
    return len(prepared.sql) + len(body.data) + PARAMETER_WORK * len(prepared.oids)


def read_bind(prepared: Prepared, body: messages.Payload) -> tuple[list[int], str]:
    """A Bind after its two names: its result format codes, and the prepared
    statement's text with its parameters written in. Counts PostgreSQL
    refuses are 08P01; a value that is not UTF-8 22021, not of its type 22P02."""
    fcodes = body.int16s(body.uint16())
    values_raw = body.values(body.uint16())
    rcodes = body.int16s(body.uint16())
    body.end()
    if len(values_raw) != len(prepared.oids):
        raise PgError("08P01", f"bind message supplies {len(values_raw)} parameters, but "
                               f"prepared statement requires {len(prepared.oids)}")
    if len(fcodes) not in (0, 1, len(values_raw)):  # as PostgreSQL: none, one for all, each
        raise PgError("08P01", f"bind message has {len(fcodes)} parameter formats but "
                               f"{len(values_raw)} parameters")
    bad = next((c for c in (*fcodes, *rcodes) if c not in (0, 1)), None)
    if bad is not None:  # PostgreSQL's code and words (it was FATAL until 2026-12-08)
        raise PgError("22023", f"unsupported format code: {bad}")
    try:
        return rcodes, bound(prepared, formats_for(fcodes, len(values_raw)), values_raw)
    except t.BadUnicode as exc:
        raise PgError("22021", str(exc)) from None
    except (t.BadParameter, params.PlaceholderError) as exc:
        raise PgError(getattr(exc, "code", "22P02"), str(exc)) from None


def bound(prepared: Prepared, pfmts: list[int], values_raw: list[bytes | None]) -> str:
    """The prepared statement's text with Bind's parameters written in."""
    values = [None if raw is None else _decoded(prepared, i, oid, fmt == 1, raw)
              for i, (oid, fmt, raw) in enumerate(
                  zip(prepared.oids, pfmts, values_raw, strict=False))]
    try:
        params.check(values, prepared.oids, prepared.targets)
    except InvalidArgument as exc:  # named as the column an HTTP literal goes into names it
        raise PgError.of(exc) from None
    sql, spots = prepared.sql, prepared.spots
    if not any(_AFTER_DEFAULT.search(sql, max(0, start - 64), start) for start, _, _ in spots):
        return params.substitute(sql, values, prepared.oids, spots)

    def text_of(n: int) -> str:
        if n > len(values):
            raise params.PlaceholderError(f"there is no parameter ${n}")
        text = params.literal(values[n - 1], prepared.oids[n - 1] if n <= len(prepared.oids) else 0)
        return _as_default(text) if n in at_default else text

    at_default = {n for start, _, n in spots
                  if _AFTER_DEFAULT.search(sql, max(0, start - 64), start)}
    return params._replace(sql, text_of, spots)


def _decoded(prepared: Prepared, i: int, oid: int, binary: bool, raw: bytes) -> Any:
    """A parameter's value. The text of one of no declared type written into
    or compared with a DECIMAL column, with an exponent or underscores, stays
    text: it goes in as the same text in SQL over HTTP does, cast by DuckDB
    (an INSERT's or UPDATE's texts in one query a column, storage/spelling.py
    decimal_casts; a WHERE's by the query). Python's Decimal() read '_1' as 1
    and stored '1e-9' in a DECIMAL(9,9), both refused over HTTP, and a WHERE
    with '1e-9' missed the 0.00 it was stored as in a DECIMAL(10,2). Any
    text stays text where the parameter is also written into or compared
    with a TEXT column, or compared with a DECIMAL (its reading as a number
    was the TEXT column's, '007' stored as '7', or met the other values'
    type: `b IN ('1e-9', 0.5)` matched where HTTP's refuses; `c = 1.005`
    missed the 1.01 HTTP's `c = '1.005'` finds in a DECIMAL(10,2)). An
    array compared by ANY with a DECIMAL column is its texts cast by DuckDB
    to a list of the column's type (`c IN ('1e-9')` over HTTP; Decimal()
    read '1e-9' as a number no row stored from it held, and '_1' as 1).
    A text that is no plain number ('1.2.3', '١٢', 'sNaN', 'NaN') stays
    text too: refused, or read, as the HTTP literal is (_PLAIN_NUMBER)."""
    how = prepared.texts.get(i)
    if binary or how is None:
        return decode_param(oid, binary, raw)
    if isinstance(how, str):  # an array compared by ANY with DECIMAL columns: `how`
        if oid != arrays.ARRAY_OF[t.NUMERIC]:
            return decode_param(oid, binary, raw)
        texts = decode_param(arrays.ARRAY_OF[t.TEXT], False, raw)
        return arrays.PgArray(texts, t.TEXT, cast=how)
    text = decode_param(t.TEXT, False, raw)
    if how or not _PLAIN_NUMBER.fullmatch(text):
        return text
    return decode_param(oid, binary, raw)


# A text Python's Decimal() reads as DuckDB's CAST does (ASCII digits, no
# exponent or underscores). Any other is the HTTP literal's to read or refuse:
# '1.2.3' and Arabic or full-width digits were 22P02 "invalid number
# parameter" (HTTP: INVALID_ARGUMENT, 22023), 'sNaN' named DOUBLE, and
# WHERE c = 'NaN' answered no rows where HTTP refuses it.
_PLAIN_NUMBER = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)\s*", re.ASCII)
_AFTER_DEFAULT = re.compile(r"\bDEFAULT\s*\Z", re.IGNORECASE)
_CAST = re.compile(r"CAST\(('(?:[^']|'')*') AS \w+\)\Z")
_NEGATIVE = re.compile(r"\((-[0-9.eE+-]+)\)\Z")
_FROM_HEX = re.compile(r"from_hex\('([0-9a-f]*)'\)\Z")


def _as_default(literal: str) -> str:
    """A DEFAULT takes a literal (a string, number, boolean or NULL), not the
    CAST or from_hex a typed parameter is written as (a timestamp's was 42601
    "unexpected 'CAST'", naming text the client never wrote): the text of it,
    which the column's type reads as a DEFAULT written so (a timestamp in UTC,
    bytes as BYTES text: ASCII as itself, any other byte `\\xHH`)."""
    if m := _CAST.match(literal):
        return m.group(1)
    if m := _NEGATIVE.match(literal):  # a DEFAULT is no expression: `(-5)` is `-5`
        return m.group(1)
    if m := _FROM_HEX.match(literal):
        data = bytes.fromhex(m.group(1))
        return params.literal("".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}"
                                      for b in data))
    return literal


def table_columns(cairn: Cairn, default: str | None, namespace: str | None,
                  table: str) -> dict[str, str] | None:
    """A table's columns and their types (to infer parameter types), or None:
    all its view shows, in order, Cairn's own (`_updated`, `_deleted`) too."""
    ns = namespace or default
    if not ns:
        return None
    ns, table = fold(ns), fold(table)
    if ns == "system":  # built from the catalog: its columns are fixed
        if table not in system_tables.NAMES:
            return None
        return {f.name: cairn_type(f) for f in system_tables.schema_of(table)}
    try:
        st = cairn.engine.state(ns, table)
    except CairnError:
        return None
    # A DECIMAL's precision and scale: `c = ANY($1)` casts its texts to them
    return {c["name"]: type_label(c) if c["type"] == "DECIMAL" else c["type"]
            for c in st.columns}


async def parameter_types(cairn: Cairn, namespace: str | None, text: str, declared: list[int],
                          count: int, off_loop: Callable[..., Awaitable[Any]],
                          ) -> tuple[list[int], list[params.Target | None], dict[int, bool | str]]:
    """Parse's parameter types, the columns they are written into and the
    parameters read as text (params.infer, on a statement thread: it reads
    the tables); a `$n` where a name must stand is 42601, as in PostgreSQL,
    whether or not its type was declared. `off_loop(text, fn, *args)`: the
    connection's. A declared type no type has is 42704 (type_oids.py)."""
    type_oids.refuse_unknown(declared)
    oids, targets = params.untyped(declared, count)
    texts: dict[int, bool | str] = {}
    try:
        if params.to_infer(oids):
            oids, targets = await cairn.run(params.infer, text, oids, functools.partial(
                table_columns, cairn, namespace), namespace, texts)
        elif count:
            await off_loop(text, params.refuse_misplaced, text)
    except params.MisplacedParameter as exc:
        raise PgError(exc.code, str(exc), exc.position) from None
    return oids, targets, texts
