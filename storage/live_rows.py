"""How many rows a query of a table sees in a set of its files: the newest
version of each key, unless that version is a delete.

A backup reports these live rows beside the row versions it stores (every
UPDATE and DELETE adds a version). Counted with DuckDB: the `_ow` column of
every row, and the key, `_seq` and `_deleted` of the overwriting versions only; a USER table's files each belong to one user, so
each user's files are counted apart (their keys are the user's own).

Most files hold only first versions (an INSERT-only table, or every flush
before the first UPDATE): their footers' `_ow` statistics say so (max false),
and such a file has exactly as many first versions as rows, read from its
footer without scanning anything (a 519 MiB namespace: 0.05-0.09 s of DuckDB
CPU that competed with the backup's copy and hash threads). What a footer
said is remembered by the file's sha256 and identity (`oids`, `_FOOTERS`),
in the process that counts: a job process lives for many BACKUPs, and each
BACKUP of a table of 200 files read 200 footers again. A snapshot's export
of buffered rows says what its footer holds from its writer (`known`). Only the files
holding an overwrite are read, file by file: the live rows are the first
versions (every file's) less the keys whose newest version is a delete, and a
key's newer versions are all `_ow` rows, which only those files hold. So a
big table of first versions plus one file of UPDATEs (a restore to a time
replaying a few UPDATEs on a large base) reads just that file."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from .query import quote, sql_string
from .sandbox import scratch_config
from .types import DELETED, OW, SEQ

# (sha256, size, mtime, inode) of a file -> its rows if it holds first
# versions only, else None (read it). The file's identity is in the key too:
# a file changed in place (its bytes then no longer its sha256, which the
# backup's copy refuses) and put back is read again, not answered for by
# what its changed bytes said.
_FOOTERS: dict[tuple[str, int, int, int], int | None] = {}
FOOTERS_KEPT = 50_000  # answers remembered, at most (then forgotten, all at once)
_DB: duckdb.DuckDBPyConnection | None = None  # the counting database (open_database)
_DB_GUARD = threading.Lock()


def count(groups: Sequence[Sequence[Path]], primary_key: Sequence[str],
          oids: Mapping[Path, str] | None = None,
          known: Mapping[Path, int | None] | None = None) -> int:
    """Live rows in `groups`: each a list of Parquet files whose keys are one
    key space (a SHARED table's files; one user's files of a USER table).
    `oids`: the files' sha256, where known (their footers' answers are
    remembered by it); `known`: what the footers of some of them say, from
    their writer (`first_only_rows` of its metadata)."""
    total = 0
    scan: list[tuple[Sequence[Path], int, Sequence[Path]]] = []  # (mixed, their firsts, all)
    for paths in groups:
        # File by file: the files of first versions only count off their
        # footers; only those holding an overwrite are read (below), and they
        # hold every `_ow` row the grouping needs.
        mixed, firsts = [], 0
        for path in paths:
            if known is not None and path in known:
                first_only = known[path]
            else:
                first_only = _first_only(path, None if oids is None else oids.get(path))
            if first_only is None:
                mixed.append(path)
            else:
                firsts += first_only
        if mixed:
            scan.append((mixed, firsts, paths))
        else:
            total += firsts
    if not scan:
        # No DuckDB at all: a cursor, its first query (the database, once a
        # process) and its close cost CPU of the job thread, some of it
        # holding the GIL the statements on the event loop wait for.
        return total
    con = _cursor()
    try:
        keys = ", ".join(quote(k) for k in primary_key)
        for paths, firsts, every in scan:
            src = _source(paths)
            # A key's first version is the one not marked `_ow` (every later
            # one is: UPDATE, DELETE, re-INSERT), so there are as many keys as
            # such rows, and a key whose newest version is a delete has
            # overwrites: only the `_ow` rows are grouped.
            row = con.execute(
                f"SELECT (SELECT count(*) FROM {src} WHERE {quote(OW)} IS NOT TRUE) - "
                f"(SELECT count(*) FROM (SELECT arg_max({quote(DELETED)}, {quote(SEQ)}) AS d "
                f"FROM {src} WHERE {quote(OW)} GROUP BY {keys}) WHERE d)").fetchone()
            live = firsts + (int(row[0]) if row else 0)
            if live < 0:
                # Later versions of keys whose first is in no file (a table
                # restored from a backup re-sealed without it: its count went
                # negative, and every later BACKUP of the namespace failed the
                # manifest's check): every key's newest version, counted.
                row = con.execute(
                    f"SELECT count(*) FROM (SELECT arg_max({quote(DELETED)}, {quote(SEQ)}) AS d "
                    f"FROM {_source(every)} GROUP BY {keys}) WHERE d IS NOT TRUE").fetchone()
                live = int(row[0]) if row else 0
            total += live
        return total
    finally:
        con.close()


def open_database() -> duckdb.DuckDBPyConnection:
    """This process's counting database, opened once: a database of its own
    for each count cost ~15 ms of CPU to open and close, most of a BACKUP's
    CPU after a small UPDATE (its one file of overwrites read in ~4 ms); a
    cursor of the kept one costs next to nothing. It holds no tables and
    caches no file's bytes or footers, so each count reads its files afresh,
    as before (a file changed since is read as it is now)."""
    global _DB
    with _DB_GUARD:
        if _DB is None:
            db = duckdb.connect(":memory:", config={**scratch_config(),
                                                   "enable_external_file_cache": False})
            db.execute("SET GLOBAL parquet_metadata_cache = false")
            # No threads kept for remote reads (DuckDB 1.4 on starts 8 with a
            # database): every thread of a job process is read with each
            # starvation sample and moved with each lift (storage/jobproc.py).
            with contextlib.suppress(duckdb.Error):  # a DuckDB without them
                db.execute("SET GLOBAL async_threads = 0")
            _DB = db
        return _DB


def _cursor() -> duckdb.DuckDBPyConnection:
    db = open_database()
    with _DB_GUARD:  # one cursor made at a time
        return db.cursor()


def _source(paths: Sequence[Path]) -> str:
    return f"read_parquet([{', '.join(sql_string(str(p)) for p in paths)}], union_by_name = true)"


def identity(path: Path, oid: str | None) -> tuple[str, int, int, int] | None:
    """What `_FOOTERS` knows a file by (None: no sha256 given, or no file)."""
    if oid is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (oid, st.st_size, st.st_mtime_ns, st.st_ino)


def remember(key: tuple[str, int, int, int] | None, meta: pq.FileMetaData) -> int | None:
    """What the footer `meta` of the file `key` says (`first_only_rows`),
    kept: a footer read for another reason (backup/nullkeys.py) is not read
    again here."""
    rows = first_only_rows(meta)
    if key is not None:
        if len(_FOOTERS) >= FOOTERS_KEPT:
            _FOOTERS.clear()
        _FOOTERS[key] = rows
    return rows


def _first_only(path: Path, oid: str | None) -> int | None:
    key = identity(path, oid)
    if key is not None and key in _FOOTERS:
        return _FOOTERS[key]
    try:
        meta = pq.read_metadata(path)
    except (OSError, ValueError):
        return None  # read it (and say what is wrong there); not remembered
    return remember(key, meta)


def first_only_rows(meta: pq.FileMetaData) -> int | None:
    """The file's rows if no row group's statistics show an `_ow` row, from
    its footer (or the metadata its writer collected: the same)."""
    names = meta.schema.names
    if OW not in names:
        return None
    column = names.index(OW)
    rows = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        stats = group.column(column).statistics
        if stats is None or not stats.has_min_max or stats.max is not False:
            return None
        rows += group.num_rows
    return rows
