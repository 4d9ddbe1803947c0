"""A statement's answer as protocol messages: RowDescription, DataRows and the
command tag PostgreSQL clients parse (`SELECT 3`, `INSERT 0 2`, ...)."""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Awaitable, Callable
from dataclasses import InitVar, dataclass, field
from typing import Any

import pyarrow as pa

from catalog import Job
from catalog.errors import CairnError
from sqlgrammar import ast
from storage.json_columns import BY_NAME

from ..result import Result
from . import messages, nested, nultext
from . import types as t
from .datetimes import values
from .errors import PgError

MAX_COLUMNS = 1664  # PostgreSQL's MaxTupleAttributeNumber; a RowDescription counts in int16


@dataclass
class Reply:
    """What one statement gives: columns (None: no rows at all), rows, tag.
    `table`: the rows as the engine gave them, where a text's NUL is looked
    for (nultext.py: 22P05 before any row is sent); `nbytes`: its Arrow
    bytes, what a portal keeping the rows counts (kept.rows_size). `held`: the
    bytes its answer counts for in the server's answers budget until let go
    (answers.py)."""

    tag: str
    columns: list[tuple[str, int]] | None = None
    rows: list[list[Any]] = field(default_factory=list)
    table: InitVar[pa.Table | None] = None
    nbytes: int | None = None
    held: int = 0

    def __post_init__(self, table: pa.Table | None) -> None:
        if table is not None:
            self.nbytes = table.nbytes
        elif self.nbytes is None:  # a catalog query's rows (pgcatalog.py)
            self.nbytes = getattr(self.rows, "nbytes", None)
        if self.columns is not None and len(self.columns) > MAX_COLUMNS:
            raise PgError("54011", f"target lists can have at most {MAX_COLUMNS} entries")
        if self.columns and self.rows:  # before any row is sent
            name = (nultext.in_table(self.columns, table) if table is not None
                    else nultext.in_rows(self.columns, self.rows))
            if name is not None:
                raise nultext.refuse(name)


class Sized(list[list[Any]]):
    """Rows that know the Arrow bytes of the answer they came from."""

    nbytes: int | None = None


_WORDS = re.compile(r"[A-Za-z_]+")
_MODIFIERS = {"SHARED", "USER", "STREAM", "OR", "REPLACE", "IF", "TEMP", "TEMPORARY"}


def tag_of(text: str, result: Result, statement: ast.Statement | None = None) -> str:
    """The command tag of `result`, of `statement` (as parsed; its text `text`):
    an INSERT's, UPDATE's or DELETE's by the parser's kind (a `WITH … INSERT`
    was tagged `WITH SRC`, so clients counted no rows), else its first words."""
    if result.columns:
        return f"SELECT {result.row_count}"
    kind = statement.kind if isinstance(statement, ast.Query) else None
    if kind == "insert":
        return f"INSERT 0 {result.row_count}"
    if kind in ("update", "delete"):
        return f"{kind.upper()} {result.row_count}"
    words = [w.upper() for w in _WORDS.findall(text[:200])[:4]]
    first = words[0] if words else ""
    rest = [w for w in words[1:] if w not in _MODIFIERS]
    return " ".join([first] + rest[:1]) if first in ("CREATE", "DROP", "ALTER") else (
        " ".join(words[:2]) or "OK")


def refuse_cut(rows: int, why: str) -> PgError:
    """An answer cut at [server] max_result_rows / max_result_bytes: HTTP says
    `"truncated": true`; a PostgreSQL client has no such flag and took the
    first rows, with an ordinary `SELECT n` tag, as the whole answer. So it is
    54000 program_limit_exceeded, and no row is sent."""
    return PgError("54000", f"the answer is cut at {rows} rows ({why}), so no row is sent: "
                            "narrow it with WHERE or page it with LIMIT/OFFSET")


def from_result(text: str, result: Result, statement: ast.Statement | None = None) -> Reply:
    if result.truncated:
        raise refuse_cut(result.row_count, (result.message or "").partition(": it is ")[2]
                         .partition(";")[0] or "max_result_rows or max_result_bytes")
    tag = tag_of(text, result, statement)
    if not result.columns:
        return Reply(tag)
    columns = [(name, t.oid_of(typ))
               for name, typ in zip(result.columns, result.types, strict=False)]
    table = getattr(result, "table", None)
    if table is not None and table.num_columns == len(columns):
        # A UBIGINT past 2**63 - 1 is no int8: such columns go as numeric. A
        # column JSON by its name alone goes as text (storage/json_columns.py).
        columns = [(name, t.NUMERIC if pa.types.is_uint64(f.type) else
                    t.TEXT if f.metadata and BY_NAME in f.metadata else oid)
                   for (name, oid), f in zip(columns, table.schema, strict=False)]
        cols = [nested.values(c) if pa.types.is_nested(c.type) else values(c)
                for c in table.columns]
        rows = [list(r) for r in zip(*cols, strict=False)] if cols else []
        return Reply(tag, columns, rows, table)
    rows = [[row.get(name) for name in result.columns] for row in result.rows]
    return Reply(tag, columns, rows)


def formats_for(codes: list[int], n: int) -> list[int]:
    """The format of each of `n` columns from a Bind's codes: none (all text),
    one for all, or one each; any other count is 08P01, as PostgreSQL says it
    (3 codes for a 1-column query were taken, the extra ones ignored)."""
    if not codes:
        return [0] * n
    if len(codes) == 1:
        return codes * n
    if len(codes) != n:
        raise PgError("08P01", f"bind message has {len(codes)} result formats but query has "
                               f"{n} columns")
    return codes


def description(columns: list[tuple[str, int]], formats: list[int]) -> bytes:
    return messages.row_description(
        [(name, oid, t.type_size(oid), fmt)
         for (name, oid), fmt in zip(columns, formats, strict=False)])


def data_rows(rows: list[list[Any]], oids: list[int], formats: list[int]) -> list[bytes]:
    encoders = [t.encoder(oid, fmt == 1) for oid, fmt in zip(oids, formats, strict=False)]
    out = []
    try:
        for row in rows:
            out.append(messages.data_row(
                [None if v is None else enc(v) for v, enc in zip(row, encoders, strict=False)]))
    except (struct.error, OverflowError):  # a value wider than its column's binary form
        raise PgError("22003", "a value is out of range for its column's type") from None
    return out


def progress_text(job: Job) -> str:
    pct = int(job.fraction_completed * 100)
    text = f"{job.job_type} {job.job_id}: {job.status} {pct}%"
    if job.files_total:
        text += f", {job.files_done}/{job.files_total} files"
    if job.bytes_total:
        text += f", {_size(job.bytes_done)} of {_size(job.bytes_total)}"
    if job.waiting_for:  # a restore's install behind a busy table (storage/lockset.py)
        text += f", waiting for {job.waiting_for}"
    return text


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)



PROGRESS_PERIOD = 0.5  # seconds between job progress notices


async def progress_notices(cairn: Any, jobs: set[str], writer: asyncio.StreamWriter,
                           drain: Callable[[], Awaitable[None]]) -> None:
    """Progress of a statement's jobs (`jobs`, as they start) as notices, while they change."""
    shown: dict[str, str] = {}
    try:
        while True:
            await asyncio.sleep(PROGRESS_PERIOD)
            for job_id in list(jobs):
                job = await cairn.run(cairn.catalog.get, Job, job_id)
                if job is None:
                    continue
                text = progress_text(job)
                if shown.get(job_id) != text:
                    shown[job_id] = text
                    writer.write(messages.notice(text))
                    await drain()
    except (ConnectionError, RuntimeError, CairnError):  # RuntimeError: a closed transport
        pass
