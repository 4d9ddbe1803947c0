"""How a query DuckDB refused is told to the client.

DuckDB's message is the user's to read, with the engine's internal view names
put back as the user's table names, as a 400: the statement was wrong. An
IOException is not the statement's fault: user SQL cannot reach files (the
allow-list, and `enable_external_access = false`: that is a
PermissionException), so it comes from the server's own Parquet files, one
missing or unreadable. That is damage to the data directory, told as INTERNAL
(500), without the server's paths; the log names the file. Save one kind: a
query's spill to the data dir's tmp/duckdb-spill that could not be written
(the disk full, say) is the query's size meeting the machine, told as a 400
like running out of memory is. And a file that could not be opened or read
because the server is out of file descriptors or memory (EMFILE, ENFILE,
ENOMEM) is no damage either: 503 UNAVAILABLE "too many open files", a WARNING
in the log (it was 500 "the data directory is damaged"). An INTERNAL or
FATAL error of DuckDB is its own bug met by the statement: a 400 saying so,
the database it invalidated replaced (storage/duckrestart.py); a query that
met the database invalidated by another is 503 UNAVAILABLE, to be run again.
No message carries DuckDB's native stack trace or a server path."""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from catalog.diskerrors import shortage
from catalog.errors import CairnError, Internal, InvalidArgument, Unavailable

from . import duckrestart
from .query import Plan
from .sandbox import SPILL_DIR

log = logging.getLogger("cairn.storage")


def clean(message: str, plan: Plan) -> str:
    """A DuckDB error as the user should read it: no internal view names, and
    none of its advice to SET what a query may not set (`SET
    max_expression_depth TO x`: PERMISSION_DENIED if followed)."""
    for view, name in sorted(plan.names.items(), reverse=True):
        message = message.replace(view, name)
    message = duckrestart.scrubbed(message)  # no native stack trace, no server path
    message, advised = _EXTENSION_ADVICE.subn("", message)
    message = _SET_ADVICE.sub("", message)
    message = message.split("\n\nLINE")[0].strip()
    if m := _STRINGS_UNCAST.search(message):
        message += (f" (strings are not cast to {m[1]} there: cast them, e.g. "
                    f"CAST(['1'] AS {m[1]}[]) for a list, or list them in IN ('1', ...), "
                    "which casts each)")
    return f"{message} {NO_EXTENSIONS}" if advised else message


# `c = ANY(['1e-9'])`, `c IN (SELECT '1')` with a DECIMAL c: DuckDB casts no
# string of a list or subquery to the other side's type, where `c IN ('1e-9')`
# casts each. Its words ("an explicit cast is required") named no cast that
# works; the hint does.
_STRINGS_UNCAST = re.compile(r"Cannot compare values of type (.+?) and VARCHAR in IN/ANY/ALL "
                             r"clause - an explicit cast is required")


# DuckDB's advice to INSTALL and LOAD an extension, and to SET auto-install on,
# whole (INSTALL is PERMISSION_DENIED here): "Please try installing and loading
# the spatial extension:\nINSTALL spatial;\nLOAD spatial;", then perhaps
# "Alternatively, consider enabling auto-install and auto-load by
# running:\nSET autoinstall_known_extensions=1;\n...", or "You can try
# "INSTALL encodings; LOAD encodings"".
_EXTENSION_ADVICE = re.compile(
    r"(?m)\s*^Please try (?:re)?installing[^\n]*$(?:\n(?:FORCE )?(?:INSTALL|LOAD) [^\n]*$)*"
    r"(?:\s*^Alternatively, consider enabling auto[^\n]*$(?:\nSET [^\n]*$)*)?"
    r"|\s*You can try \"INSTALL [^\"\n]*\"\.?|\s*Install it first using \"INSTALL[^\n]*")
NO_EXTENSIONS = "Extensions cannot be installed or loaded on this server."
_SET_ADVICE = re.compile(r"\s*(?:Use|use|Try|try)[^.]*\b(?:SET|PRAGMA)\b[^.]*\.?")


def query_failed(exc: duckdb.Error, plan: Plan,
                 abs_path: Callable[[str], Path] | None = None) -> CairnError:
    """The error a query that DuckDB failed raises. `abs_path`: a DataFile
    path's file, to check one DuckDB's message names (without it, no
    InvalidInputException is taken for damage)."""
    if duckrestart.already_invalid(exc):  # another statement's fault: run it again
        return Unavailable(duckrestart.statement_failed(exc))
    if duckrestart.invalidating(exc):  # DuckDB's bug, met by this statement
        return duckrestart.DuckFault(duckrestart.statement_failed(exc, lambda m: clean(m, plan)))
    if isinstance(exc, duckdb.OutOfMemoryException):
        # DuckDB's advice (PRAGMA, SET) is not the client's to follow.
        first = clean(str(exc), plan).split("\n")[0]
        return InvalidArgument(
            f"{first} The query needs more than [storage] duckdb_memory_limit holds "
            f"and duckdb_spill_limit lets it write to disk.")
    if isinstance(exc, duckdb.IOException) and (short := shortage(exc)) is not None:
        log.warning("a query could not open or read a file: %s", clean(str(exc), plan))
        return short
    if isinstance(exc, duckdb.IOException) and SPILL_DIR in str(exc):
        log.warning("a query's spill to disk failed: %s", exc)
        return InvalidArgument(
            "the query needs more memory than [storage] duckdb_memory_limit and its "
            "spill to disk could not be written (the server log says why)")
    if isinstance(exc, duckdb.ParserException) and "syntax error" in str(exc):
        # The text as written passed DuckDB's parser: this is the rewrite's.
        return InvalidArgument(unrewritable(plan, clean(str(exc), plan)))
    if isinstance(exc, duckdb.IOException) or _damaged_file_named(exc, plan, abs_path):
        # A data file DuckDB cannot read, or reads as no Parquet ("No magic
        # bytes found at end of file '<path>'": truncated, zeroed) was a 400
        # quoting the server's path.
        log.error("a query could not read a data file: %s", clean(str(exc), plan))
        return Internal(DAMAGED)
    return InvalidArgument(clean(str(exc), plan))


def unrewritable(plan: Plan, said: str) -> str:
    """What to say of a statement whose rewrite DuckDB's parser refuses. Its
    text passed DuckDB's parser (sqlgrammar/duckparse.py); what runs is that
    text as Cairn's SQL parser (sqlglot) writes it back, and some of that
    DuckDB does not read (`1.5::FLOAT(3)` is written `CAST(1.5 AS REAL(3))`).
    DuckDB's own words name text the user never wrote, so the part is named:
    the shortest expression whose rewrite alone DuckDB's parser refuses."""
    part = _unparsed_part(plan.tree) if plan.tree is not None else None
    where = f" (`{clean(part, plan)}`)" if part else ""
    return (f"Cairn cannot run this statement: it runs it as its SQL parser writes it back, and "
            f"DuckDB's parser does not read that rewrite of one part{where}: {said}. "
            f"Write that part another way")


_MAX_TRIED = 2000  # expressions tried, at most (this is only when a statement fails)


def _unparsed_part(tree: exp.Expression) -> str | None:
    tried, found = 0, None
    con = duckdb.connect(config={"enable_external_access": "false"})
    try:
        for node in tree.walk():
            if not isinstance(node, exp.Condition) or isinstance(node, exp.Column | exp.Literal):
                continue
            text = node.sql(dialect="duckdb")
            if found is not None and len(text) >= len(found):
                continue
            tried += 1
            if tried > _MAX_TRIED:
                break
            try:
                con.extract_statements(f"SELECT {text}")
            except duckdb.ParserException:
                found = text
            except duckdb.Error:
                continue
    finally:
        con.close()
    return found if found is None or len(found) <= 120 else found[:117] + "..."


DAMAGED = ("a table's data could not be read: the data directory is damaged or was "
           "changed outside the server (the server log names the file)")


# How DuckDB's Parquet reader names a file it cannot read as Parquet: "No
# magic bytes found at end of file '<path>'", "File '<path>' too small to be
# a Parquet file", ... always the absolute path DuckDB was given, in quotes.
_QUOTED_PATH = re.compile(r"'([^']+\.parquet)'")


def _damaged_file_named(exc: duckdb.Error, plan: Plan,
                        abs_path: Callable[[str], Path] | None) -> bool:
    """Is `exc` DuckDB's Parquet reader failing on a data file the plan reads?

    Not for any InvalidInputException whose text holds such a path: a user's
    own `error('files/tbl-…/f-….parquet')` raises one too (it was 500 and an
    ERROR "could not read a data file" in the log). Only one whose text names,
    in DuckDB's quoted form, the absolute path of a file the plan reads, and
    only when that file's footer really does not read (the user's text may
    copy DuckDB's wording): anything else is the statement's own error."""
    if not isinstance(exc, duckdb.InvalidInputException) or abs_path is None:
        return False
    named = set(_QUOTED_PATH.findall(str(exc).split("\n\nLINE")[0]))
    for _, files, _ in plan.reads:
        for f in files:
            try:
                path = str(abs_path(f.path))
            except CairnError:
                continue
            if path in named and not _footer_reads(path):
                return True
    return False


def _footer_reads(path: str) -> bool:
    """Does the Parquet file at `path` open and its footer parse? Unavailable
    if it cannot be opened for want of file descriptors (it may be sound)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if (short := shortage(exc)) is not None:
            raise short from None
        return False
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return False
            pq.read_metadata(f)
    except (OSError, ValueError, pa.ArrowException):
        return False
    return True


def unreadable(path: Path | str, exc: BaseException) -> CairnError:
    """The error of a query whose data file at `path` raised `exc` when it was
    opened or read: Unavailable when the server is out of file descriptors or
    memory (a WARNING names the file), else `damaged_file`."""
    if (short := shortage(exc)) is not None:
        log.warning("a query could not open or read a data file: %s: %s", path, exc)
        return short
    return damaged_file(path, getattr(exc, "strerror", None) or exc)


def damaged_file(path: Path | str, why: object) -> Internal:
    """The error of a query that found a data file it cannot read (the point
    lookups' own reads, storage/pointcache.py; a FIFO or a folder in place of a
    file), as a scan's: the log names the file."""
    log.error("a query could not read a data file: %s: %s", path, why)
    return Internal(DAMAGED)


def open_data_file(path: Path | str) -> int:
    """A descriptor of the data file at `path` for reading, opened without
    waiting: a FIFO put in a file's place held a statement thread for ever
    (the query timeout does not reach a blocked open). Internal (damaged)
    if it is missing or not a regular file; Unavailable if the server is out
    of file descriptors."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise unreadable(path, exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise damaged_file(path, "not a regular file")
    return fd


def check_data_file(path: Path | str) -> None:
    """Internal (damaged) unless `path` is a regular file (DuckDB is given
    paths, and its open of a FIFO waits for a writer for ever)."""
    os.close(open_data_file(path))


# Absolute paths of data files found regular files (a file's path is never
# reused), so that a query stats each file once a process, not once a query.
_REGULAR: set[str] = set()


def check_files(plan: Plan, abs_path: Callable[[str], Path]) -> None:
    """Before DuckDB reads the plan's data files: each one is a regular file,
    else Internal (damaged), not a statement thread waiting for ever."""
    for _, files, _ in plan.reads:
        for f in files:
            path = str(abs_path(f.path))
            if path not in _REGULAR:
                check_data_file(path)
                if len(_REGULAR) > 1_000_000:
                    _REGULAR.clear()
                _REGULAR.add(path)
