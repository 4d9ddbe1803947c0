"""A DuckDB that failed internally is replaced, not left broken for everyone.

After an INTERNAL error (a DuckDB bug met by one statement, such as a JSON
function given a JSON[] list that holds a NULL) or a FATAL one, DuckDB marks
the whole database invalid: every later query on any of its connections
fails with "database has been invalidated ... must be restarted". One role
user's SELECT made every query of every user fail until the server restarted.

So each of the server's in-memory DuckDBs sits in a `Rebuilt`: its current
connection and a generation number. A cursor remembers the generation it was
made from; the statement that meets an invalidating error calls `restart`
with that generation, which builds a fresh connection the same way the first
was built (the same `make`: settings, sandbox, memory limit, threads) and
counts the generation on, once however many statements saw the same fault.
Cursors of an older generation are dropped before their next use; a query
still running on the old database when it was replaced ends as it would have
(or, if it meets the invalid database, with a retryable UNAVAILABLE). The old
connection is closed if no query is using it, else left to be freed with its
last cursor. Nothing lives in these databases but what `make` sets up (every
query registers its own Arrow tables), so nothing else is lost."""

from __future__ import annotations

import collections
import contextlib
import logging
import re
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import duckdb

from catalog.errors import CairnError, Cancelled, InvalidArgument, Unavailable

from .duck import Cursor

log = logging.getLogger("cairn.storage")

# Restarts since the process started, by database ("main", "small", "catalog"):
# shown by GET /metrics as cairn_duckdb_restarts_total.
RESTARTS: collections.Counter[str] = collections.Counter()


def invalidating(exc: BaseException) -> bool:
    """Does `exc` leave its DuckDB invalid? DuckDB invalidates the database on
    every INTERNAL error and on a FATAL one."""
    return isinstance(exc, duckdb.InternalException | duckdb.FatalException)


def already_invalid(exc: BaseException) -> bool:
    """Is `exc` the refusal of a database invalidated by an earlier statement
    (not a fault of the statement that got it), or closed as it was replaced?
    (A relation's fetch says "Connection has already been closed".)"""
    return (isinstance(exc, duckdb.FatalException) and "has been invalidated" in str(exc)
            or isinstance(exc, duckdb.ConnectionException)
            and ("already closed" in str(exc) or "already been closed" in str(exc)))


class Rebuilt:
    """One DuckDB connection, rebuilt by `make(generation)` when it is invalidated.
    `lazy`: made at its first cursor, not now (the engine's "small" DuckDB: an
    open with its guards, storage/unstoppable.py, is ~30 ms of CPU, and many a
    server never runs a small query)."""

    def __init__(self, name: str, make: Callable[[int], duckdb.DuckDBPyConnection],
                 lazy: bool = False) -> None:
        self.name = name
        self._make = make
        self._lock = threading.Lock()
        self.generation = 0
        self._con = None if lazy else make(0)

    def _made(self) -> duckdb.DuckDBPyConnection:
        """The connection, made if it is not yet (under the lock)."""
        if self._con is None:
            self._con = self._make(self.generation)
        return self._con

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._made()

    def cursor(self) -> tuple[duckdb.DuckDBPyConnection, int]:
        """A new cursor of the current connection, with its generation."""
        with self._lock:
            return self._made().cursor(), self.generation

    def restart(self, generation: int, kind: str, exc: BaseException) -> bool:
        """Replace the connection of `generation` (whose statement `kind` met
        `exc`) with a fresh one; False if it was replaced already."""
        with self._lock:
            if generation != self.generation:
                return False
            old = self._con
            try:
                self._con = self._make(generation + 1)
            except (duckdb.Error, OSError) as failed:  # the next statement that meets it tries again
                log.warning("DuckDB (%s) failed internally on %s (%s) and could not be replaced "
                            "yet: %s", self.name, kind, type(exc).__name__, failed)
                return False
            self.generation = generation + 1
        RESTARTS[self.name] += 1
        log.warning("DuckDB (%s) failed internally on %s (%s) and invalidated its database: "
                    "replaced it with a fresh one (restart %d since start)",
                    self.name, kind, type(exc).__name__, RESTARTS[self.name])
        if old is not None:
            with contextlib.suppress(duckdb.Error):  # busy (a query still on it): freed with it
                old.close()
        return True

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()


# DuckDB appends its native stack trace to an INTERNAL error ("\n\nStack
# Trace:\n\n/…/_duckdb.cpython-311-x86_64-linux-gnu.so(…) [0x…]\n…").
_STACK = re.compile(r"\s*\bStack Trace:.*", re.DOTALL)
_INSTALL_PATHS = {p for p in {sys.prefix, sys.base_prefix, sys.exec_prefix,
                               str(Path(duckdb.__file__).resolve().parent.parent)} if len(p) > 1}
_DATA_PATHS: set[str] = set()
_PATH_CHARS = r"[^\s'\"()\[\]]*"


def server_path(path: Path | str) -> None:
    """Name a folder of this server (its data dir) that no internal error may show."""
    text = str(Path(path).resolve())
    if len(text) > 1:
        _DATA_PATHS.add(text)


def scrubbed(message: str, data_dir: bool = False) -> str:
    """DuckDB's message without its native stack trace and without any path
    under the Python install; with `data_dir`, nor under the data dir (an
    ordinary error's path there is the user's own text, or a damaged file
    that query_errors.py tells apart and logs)."""
    message = _STACK.sub("", message)
    roots = _INSTALL_PATHS | _DATA_PATHS if data_dir else _INSTALL_PATHS
    for root in sorted(roots, key=len, reverse=True):
        if root in message:
            message = re.sub(re.escape(root) + _PATH_CHARS, "<server path>", message)
    return message


class DuckFault(InvalidArgument):
    """The 400 of a statement that made DuckDB fail internally (not of one that
    met a DuckDB another statement broke): the server remembers its statement
    so as not to run it again (server/duckfaults.py)."""


def statement_failed(exc: BaseException, say: Callable[[str], str] = scrubbed) -> str:
    """What to tell the client whose statement `exc` ended (invalidating):
    `say` cleans DuckDB's words for the client."""
    first = scrubbed(say(str(exc)), data_dir=True).strip().split("\n")[0]
    if already_invalid(exc):
        return ("the query engine was restarted after another statement made DuckDB fail "
                "internally, while this statement ran on it: run it again")
    return (f"DuckDB failed internally on this statement ({first}); the query engine was "
            f"restarted. This is a fault of DuckDB, not of the statement's syntax: write the "
            f"statement another way")


def fault_of(exc: BaseException) -> CairnError:
    """The error of a statement whose DuckDB failed internally (`exc`,
    invalidating): its own fault (a DuckFault), or another's met (run again)."""
    if already_invalid(exc):
        return Unavailable(statement_failed(exc))
    return DuckFault(statement_failed(exc))


class DuckDBs:
    """The engine's DuckDBs ("main", and "small" unless it is the same) and
    each thread's cursor on each (a cursor per query cost ~0.3 ms to make
    and close)."""

    def __init__(self, main: Rebuilt, small: Rebuilt | None = None) -> None:
        self.main = main
        self.small = small or main
        self._lock = threading.Lock()
        self._closed = False
        self._local = threading.local()
        self._cursors: weakref.WeakSet[Cursor] = weakref.WeakSet()

    def cursor(self, small: bool) -> Cursor:
        """This thread's cursor on the DuckDB, made anew if it has none or
        its one is of a DuckDB since replaced."""
        slot = "small" if small else "main"
        db = self.small if small else self.main
        c: Cursor | None = getattr(self._local, slot, None)
        if c is not None and c.generation != db.generation:
            self.discard(c)
            c = None
        if c is None:
            with self._lock:
                if self._closed:
                    raise Cancelled("the server is shutting down")
                try:
                    cur, generation = db.cursor()
                except (duckdb.Error, OSError) as exc:
                    if db is self.main:
                        raise
                    # The small DuckDB is made at its first query: one that
                    # cannot be made leaves small queries to the main one.
                    log.warning("DuckDB (small) could not be opened (%s): small queries "
                                "run on the main one", exc)
                    slot, db = "main", self.main
                    cur, generation = db.cursor()
                c = Cursor(cur, slot, generation)
                self._cursors.add(c)
            setattr(self._local, slot, c)
        return c

    def discard(self, c: Cursor) -> None:
        """Drop a cursor that failed or was interrupted; the thread makes a new one."""
        if getattr(self._local, c.slot, None) is c:
            setattr(self._local, c.slot, None)
        with self._lock:
            self._cursors.discard(c)
        with contextlib.suppress(duckdb.Error):
            c.cur.close()

    def failed(self, c: Cursor, exc: BaseException, kind: str) -> None:
        """A query on `c` raised `exc`: if that invalidated its DuckDB, replace it."""
        if invalidating(exc):
            (self.small if c.slot == "small" else self.main).restart(c.generation, kind, exc)

    def close(self) -> bool:
        """Close every cursor and DuckDB; False if they were closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            for c in list(self._cursors):
                with contextlib.suppress(duckdb.Error):
                    c.cur.close()
        for db in {id(self.main): self.main, id(self.small): self.small}.values():
            with contextlib.suppress(duckdb.Error):
                db.close()
        return True
