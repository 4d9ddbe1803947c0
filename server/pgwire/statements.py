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

from ..state import Cairn
from . import messages, params
from .errors import PgError
from .kept import OID_BYTES, SPOT_BYTES
from .results import Reply
from .types import decode_param

WRITE = re.compile(r"\s*(?:INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@dataclass
class Prepared:
    sql: str
    oids: list[int]
    spots: params.Spots  # where its `$n` are, found once at Parse
    described: list[tuple[str, int]] | None = None  # what Describe(statement) promised
    write: bool = False  # an INSERT, UPDATE or DELETE: Describe(portal) does not run it
    targets: list[params.Target | None] = field(default_factory=list)  # params.check()

    def size(self) -> int:
        """The bytes it keeps, as the connection's budget counts them (kept.py)."""
        return len(self.sql) + OID_BYTES * len(self.oids) + SPOT_BYTES * len(self.spots)


@dataclass
class Portal:
    prepared: Prepared
    sql: str
    formats: list[int]
    reply: Reply | None = None
    described: bool = False
    sent: int = 0  # rows already sent (Execute with a row limit)


def split(sql: str) -> list[Any]:
    return list(split_script(sql))


def text(body: messages.Payload) -> str:
    """A query string; text that is not UTF-8 is refused (22021), not fatal."""
    end = body.data.find(b"\x00", body.pos)
    if end < 0:
        raise messages.ProtocolViolation("query string is not terminated")
    raw = body.data[body.pos:end]
    body.pos = end + 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PgError(
            "22021", f"invalid byte sequence for encoding \"UTF8\" at byte {exc.start}"
        ) from None


def bound(prepared: Prepared, pfmts: list[int], values_raw: list[bytes | None]) -> str:
    """The prepared statement's text with Bind's parameters written in."""
    values = [decode_param(oid, fmt == 1, raw)
              for oid, fmt, raw in zip(prepared.oids, pfmts, values_raw, strict=False)]
    try:
        params.check(values, prepared.oids, prepared.targets)
    except InvalidArgument as exc:  # named as the column an HTTP literal goes into names it
        raise PgError.of(exc) from None
    return params.substitute(prepared.sql, values, prepared.oids, prepared.spots)


def table_columns(cairn: Cairn, default: str | None, namespace: str | None,
                  table: str) -> dict[str, str] | None:
    """A table's columns and their types (to infer parameter types), or None."""
    ns = namespace or default
    if not ns:
        return None
    try:
        st = cairn.engine.state(ns.lower(), table.lower())
    except CairnError:
        return None
    return {c["name"]: c["type"] for c in st.columns if not c.get("system")}


async def parameter_types(cairn: Cairn, namespace: str | None, text: str, declared: list[int],
                          count: int, off_loop: Callable[..., Awaitable[Any]],
                          ) -> tuple[list[int], list[params.Target | None]]:
    """Parse's parameter types and the columns they are written into
    (params.infer, on a statement thread: it reads the tables); a `$n` where
    a name must stand is 42601, as in PostgreSQL, whether or not its type
    was declared. `off_loop(text, fn, *args)`: the connection's."""
    oids, targets = params.untyped(declared, count)
    try:
        if params.to_infer(oids):
            return await cairn.run(params.infer, text, oids, functools.partial(
                table_columns, cairn, namespace), namespace)
        if count:
            await off_loop(text, params.refuse_misplaced, text)
    except params.MisplacedParameter as exc:
        raise PgError(exc.code, str(exc), exc.position) from None
    return oids, targets
