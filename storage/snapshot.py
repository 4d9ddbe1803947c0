"""Namespaces as of one instant, every file ready to store: what a BACKUP copies.

`take` holds the registry's `ddl` lock (which no INSERT takes) while it reads
the schema records, and every table's `lock` (which every commit takes) only
for as long as it takes to copy references (well under a millisecond: the
file list is pinned, the buffer's immutable batches are shared), so the
snapshot is one committed state of every table in scope, wholly before or
wholly after any concurrent DDL. Afterwards, without any lock, buffered rows
are converted into Arrow here (the buffer is this process's; joining runs of
batches in Arrow before conforming them, `buffer.conform_batches`: it holds
the GIL beside the writers, and batch by batch it took ~0.25 ms of Python per
buffered INSERT), then written as Parquet files laid out exactly as a flush
would write them (one per user for USER tables), so a restore registers them
like any other file: here, or for a BACKUP in its job process
(`defer_export`, `BufferExport`).

The snapshot's namespaces are `NamespaceImage`s (backup/image.py), what
backup/writer.py stores."""

from __future__ import annotations

import contextlib
import itertools
import pickle
import shutil
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pyarrow as pa
import pyarrow.compute as pc

from catalog import DataFile, Namespace, Table, TableSchema
from catalog.errors import NotFound
from catalog.ids import new_id
from catalog.records import SEP

from . import clock_floor, priority
from .archive import changes as change_log
from .archive.store import iso
from .backup import nullkeys
from .backup.image import FileToStore, NamespaceImage
from .backup.schema import Column as ColumnEntry
from .backup.schema import FileEntry, NamespaceRecord, SchemaEntry, TableEntry
from .buffer import TableState
from .conversion import cached_lead, convert_after
from .fileparts import footer_of, write_parts
from .files import FileStore, data_file_bytes, write_data_file
from .keys import key_range
from .live_rows import count as count_live
from .live_rows import first_only_rows
from .registry import Registry
from .types import SEQ, USER, Column
from .work import Work

__all__ = ["FileToStore", "NamespaceImage", "Scope", "Snapshot", "Work", "take"]


# A BACKUP's buffered rows up to this many bytes in all go to its job process
# inside the call, each table's pickled on its own first (`BufferExport.pack`);
# a table's rows past it go through a file (`BufferExport.spill`). Spilled,
# each table's rows were ~11 takes of the server's GIL (mkdir, open, the
# writer's open, write, closes): 577 a BACKUP of a namespace of 50 tables with
# a row buffered each, against ~32 for one table (docs/performance.md). Sent
# in band, a frame this size fits the socket's buffer: one write.
INLINE_BYTES = 128 << 10

# What a scope names: namespace -> table names, or None for every table.
Scope = Mapping[str, Collection[str] | None]


@dataclass
class Snapshot:
    """Namespaces at `snapshot_at`. Files stay pinned (and exports on disk)
    until `release()` (or the end of a `with` block)."""

    snapshot_at: str
    namespaces: list[NamespaceImage]
    _release: Callable[[], None] = field(repr=False)
    # Per namespace, the cut of its change log the snapshot is exact to (see
    # storage/archive/changes.py): (lsn, time in µs): every change with
    # lsn <= the first, committed at or before the second, and no other.
    cuts: dict[str, tuple[int, int]] = field(default_factory=dict)
    # The namespaces whose change log was on at the cut (archived): only their
    # cut's lsn says where archived changes continue the snapshot.
    logged: frozenset[str] = frozenset()

    @property
    def files(self) -> list[FileToStore]:
        return [f for ns in self.namespaces for f in ns.files]

    def release(self) -> None:
        self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class _Captured:
    """A table's references copied under its lock."""

    namespace: str
    table: Table
    columns: list[Column]
    version: int
    batches: list[Any] | None
    cached: tuple[int, tuple[bytes, ...], pa.Table] | None
    schemas: list[TableSchema]
    files: list[DataFile]
    schema: pa.Schema
    strict: pa.Schema  # the storage schema rows are written with now
    state: TableState | None = None  # where the buffer's conversion is kept (`_buffer`)
    mark: tuple[int, int, int] | None = None  # `TableState.conversion_mark` at the capture
    cover: tuple[int, int, int] | None = None  # what `cached` covers (`TableState.cached_cover`)
    rows: pa.Table | None = None  # the buffer converted (`_buffer`), set on the capture's thread


def take(registry: Registry, scope: Scope, staging_root: Path,
         defer_export: bool = False, floor_us: int = 0) -> Snapshot:
    """Snapshot every table in `scope`. NOT_FOUND for a namespace or table
    that does not exist at the instant taken.

    Buffered rows are converted to Arrow here (the buffer is this process's),
    and written as Parquet files here too unless `defer_export`: then each
    image's `export_buffers` writes them, which a BACKUP runs as its job
    process's first step (storage/backup/writer.py). The Parquet encoding,
    hashing and file calls of a buffer of 10,000 rows were most of the CPU a
    BACKUP's thread used in the server beside the event loop, every one of
    its system calls a take of the loop's GIL (docs/performance.md)."""
    files = registry.files
    floors = clock_floor.recorded_us(registry.catalog, scope)

    def locked() -> tuple[dict[str, Namespace], list[_Captured], str, str,
                          dict[str, tuple[int, int]], frozenset[str]]:
        with registry.ddl:
            records: dict[str, Namespace] = {}
            states: list[tuple[str, TableState]] = []
            for ns, names in scope.items():
                rec = registry.catalog.get(Namespace, ns)
                if rec is None:
                    raise NotFound(f"Namespace '{ns}' does not exist")
                records[ns] = rec
                if names is None:
                    states += [(ns, st) for st in registry.states(ns)]
                else:
                    states += [(ns, registry.state(ns, n)) for n in names]
            states.sort(key=lambda s: s[1].uid)
            # Schema records change only under `ddl`: read before the table locks.
            schemas = {st.uid: registry.catalog.scan(TableSchema, st.uid + SEP) for _, st in states}
            with contextlib.ExitStack() as held:
                for _, st in states:
                    held.enter_context(st.lock)
                # Each namespace's commit lock makes the snapshot a cut of its change log.
                cuts: dict[str, tuple[int, int]] = {}
                logged: set[str] = set()
                held_states = []
                for ns in sorted(records):
                    state = held.enter_context(registry.changes.holding(ns))
                    # after every snapshot this server took of it (clock_floor.py)
                    floor = max(floors.get(ns, 0), state.snap_us, floor_us,
                                clock_floor.restored_us(records[ns]))
                    state.last_us = max(state.last_us, floor + 1)
                    cuts[ns] = registry.changes.cut(state, wait=False)
                    held_states.append(state)
                    if state.active:
                        logged.add(ns)
                instant = max((at for _, at in cuts.values()), default=0)
                for state in held_states:  # a set's instant: later commits after it
                    state.last_us = state.snap_us = max(state.last_us, instant)
                # one wait (≤ 1 ms) for every namespace's cut, the commit locks held
                change_log.wait_for(instant)
                captured = [_capture(ns, st, schemas[st.uid]) for ns, st in states]
                token = files.pin([f.path for c in captured for f in c.files])
                taken = iso(instant) if len(records) != 1 else ""
        return records, captured, token, taken, cuts, frozenset(logged)

    def captured_and_converted() -> tuple[dict[str, Namespace], list[_Captured], str, str,
                                          dict[str, tuple[int, int]], frozenset[str]]:
        got = locked()
        try:
            breathe = priority.Breather()
            for c in got[1]:
                c.rows = _buffer(c)
                breathe()
        except BaseException:
            files.unpin(got[2])
            raise
        return got

    # Writers wait while the table locks are held: take them at normal priority
    # even from a background job (storage/priority.py), and convert the
    # buffers there too, as the flush does (storage/flush.py): one trip to
    # that thread for both.
    records, captured, token, snapshot_at, cuts, logged = \
        priority.at_normal_priority(captured_and_converted)
    if not snapshot_at:  # one namespace: the instant of its cut
        snapshot_at = iso(cuts[next(iter(records))][1])
    staging = staging_root / f"snapshot-{new_id('s')}"

    def release() -> None:
        files.unpin(token)
        shutil.rmtree(staging, ignore_errors=True)

    try:
        server = registry.catalog.server_id()  # tells this server's namespaces from others'
        images = {ns: NamespaceImage(ns, NamespaceRecord(created_at=r.created_at, options=dict(r.options),
                                                         server=server), [], [])
                  for ns, r in records.items()}
        breathe = priority.Breather()
        for c in sorted(captured, key=lambda c: (c.namespace, c.table.name)):
            breathe()
            image = images[c.namespace]
            entry, items, counting = _table_entry(c, files)
            image.tables.append(entry)
            image.files += items
            image.counts.append(counting)
            if c.rows is not None and c.rows.num_rows:
                image.exports.append(BufferExport(
                    c.rows, c.table.uid, c.table.table_type, c.table.schema_version,
                    list(c.columns), list(c.table.primary_key), staging, entry, image, counting))
        inline = INLINE_BYTES
        for image in images.values():
            if not defer_export:
                image.export_buffers()
                continue
            for export in image.exports:
                if isinstance(export, BufferExport):
                    assert export.rows is not None
                    size = export.rows.get_total_buffer_size()
                    if size <= inline:
                        inline -= size
                        export.pack()
                        breathe()
                    else:
                        export.spill()
        return Snapshot(snapshot_at, list(images.values()), release, cuts, logged)
    except BaseException:
        release()
        raise


def _capture(ns: str, st: TableState, schemas: list[TableSchema]) -> _Captured:
    if st.dropped:  # cannot happen under `ddl`, but never back up a dropped table
        raise NotFound(f"Table '{ns}.{st.table.name}' does not exist")
    stream = st.table.table_type == "stream"
    return _Captured(
        ns, st.table, list(st.columns), st.schema.version,
        None if stream else list(st.batches.values()),
        st.cached_buffer(), schemas,
        list(st.files), st.loose_schema(), st.row_schema(),
        st, None if stream else st.conversion_mark(), st.cached_cover(),
    )


def _buffer(c: _Captured) -> pa.Table | None:
    """The captured buffer as one Arrow table, reusing the prefix of it that
    the table's all-users conversion already holds, and left there for the
    next snapshot, flush or query (`TableState.keep_conversion`): converting a
    buffer of single-row INSERTs holds the GIL ~3.5 µs a row beside the
    writers, so back-to-back BACKUPs now convert only the rows written since
    the last one (docs/performance.md, issue 15)."""
    if c.batches is None:
        return None
    cached, cover, mark = c.cached, c.cover, c.mark
    if (cached is not None and cached[0] == c.version and cover is not None and mark is not None
            and cover[:2] == mark[:2] and len(cached[1]) == cover[2] <= mark[2]):
        # No batch went since the cached conversion (the map's generation):
        # it holds the first batches, and no key needs comparing.
        start = cover[2]
        keys = cached[1] + tuple(b.key for b in c.batches[start:])
    else:
        keys = tuple(b.key for b in c.batches)
        start = cached_lead(cached, c.version, keys)
    rows = convert_after(cached[2] if start and cached else None, start, c.batches, c.table,
                         c.columns, c.version, c.schema, c.strict)
    if start < len(c.batches) and c.state is not None and c.mark is not None:
        c.state.keep_conversion(c.version, keys, rows, c.mark)
    return rows


def _table_entry(c: _Captured, files: FileStore
                 ) -> tuple[TableEntry, list[FileToStore], LiveCount]:
    """The table's manifest entry and files to store as far as its flushed
    files go (a `BufferExport` adds its buffered rows' files), and what counts
    its live rows into the entry (NamespaceImage.count_live_rows)."""
    t = c.table
    items = [
        FileToStore(files.abs(f.path), f.bytes, f.sha256, FileEntry(
            oid=f.sha256, size=f.bytes, rows=f.rows, schema_version=f.schema_version,
            user_id=f.user_id, min_seq=f.min_seq, max_seq=f.max_seq, source="parquet",
            key_range={k: list(v) for k, v in f.key_range.items()},
        ))
        for f in c.files
    ]
    by_user: dict[str | None, list[Path]] = {}
    for i in items:
        by_user.setdefault(i.entry.user_id, []).append(i.path)
    oids = {i.path: i.entry.oid for i in items}
    entry = TableEntry(
        name=t.name, table_type=t.table_type,  # type: ignore[arg-type]
        schema_version=t.schema_version, primary_key=list(t.primary_key),
        options=dict(t.options), created_at=t.created_at,
        schemas=[SchemaEntry(version=s.version, columns=_columns(s.columns), created_at=s.created_at)
                 for s in sorted(c.schemas, key=lambda s: s.version)],
        files=[i.entry for i in items],
        rows=sum(i.entry.rows for i in items),
        max_seq=max((i.entry.max_seq for i in items), default=0),
    )

    return entry, items, LiveCount(entry, by_user, list(t.primary_key), oids)


@dataclass
class LiveCount:
    """Counts a table's live rows into its manifest entry (picklable: a
    backup's image goes to a job process, storage/jobproc.py). `groups`: the
    table's files by user (one key space each)."""

    entry: TableEntry
    groups: dict[str | None, list[Path]]
    primary_key: list[str]
    oids: dict[Path, str] = field(default_factory=dict)  # each file's sha256
    # What the footers of the buffered rows' files say, from their writer.
    known: dict[Path, int | None] = field(default_factory=dict)

    def __call__(self) -> None:
        self.entry.live_rows = count_live(list(self.groups.values()), self.primary_key,
                                          self.oids, self.known)


@dataclass
class BufferExport:
    """A table's buffered rows, converted, still to be written as Parquet files
    laid out exactly as a flush would write them (one per user for USER
    tables), so a restore registers them like any other file. Calling it
    writes them under `staging` (unsynced: the backup reads each once, and
    the snapshot's release removes them), or for rows that went packed keeps
    their bytes in memory for the backup to store from there, and adds them
    to the table's entry, to the image's files and to the table's live count. Picklable: a BACKUP
    runs it in its job process, the rows going with it, pickled by `pack`
    (up to INLINE_BYTES for the snapshot), or past that after `spill` (the
    server's part) put them in an Arrow file for the job process to map."""

    rows: pa.Table | None = field(repr=False, compare=False)
    table_uid: str
    table_type: str
    schema_version: int
    columns: list[Column]
    primary_key: list[str]
    staging: Path
    entry: TableEntry = field(repr=False, compare=False)
    image: NamespaceImage = field(repr=False, compare=False)
    live: LiveCount = field(repr=False, compare=False)
    spilled: Path | None = None  # where `spill` put the rows
    packed: bytes | None = field(default=None, repr=False)  # the rows pickled (`pack`)

    def pack(self) -> None:
        """The rows pickled now, on their own, to go inside the job-process
        call as bytes. Pickled with the call instead, 50 tables' rows held
        the GIL ~4 ms in one stretch (pyarrow's pickling is compiled code:
        the event loop cannot get in); one table's is ~70 µs, and `take`
        lets the loop in between tables (priority.Breather). Not an Arrow IPC
        stream: its writer is ~8 µs a table against pickle's ~40-60, but each
        of its calls lets the GIL go (8 takes a table, 430 a 50-table BACKUP
        against 35), and every take beside the event loop costs the
        statements more than the pickling does (docs/performance.md)."""
        assert self.rows is not None
        self.packed = pickle.dumps(self.rows, protocol=pickle.HIGHEST_PROTOCOL)
        self.rows = None

    def spill(self) -> None:
        """The rows into an Arrow IPC file under `staging`, not in this object:
        sent to a job process through its socket, a buffer's MiBs went in
        many small writes as the process (under SCHED_IDLE) read them, each a
        take of the server's GIL (~135 a BACKUP of load.py's table). Written
        here in one call that lets the GIL go once, mapped there."""
        assert self.rows is not None
        self.staging.mkdir(parents=True, exist_ok=True)
        path = self.staging / f"{self.table_uid}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, self.rows.schema) as out:
            out.write_table(self.rows)
        self.rows, self.spilled = None, path

    def __call__(self) -> None:
        if self.rows is not None:
            rows = self.rows
        elif self.packed is not None:
            rows = pickle.loads(self.packed)
        else:
            assert self.spilled is not None
            rows = pa.ipc.open_file(pa.memory_map(str(self.spilled))).read_all()
        nulls = max(rows.column(k).null_count for k in self.primary_key)
        if nulls:  # an older Cairn's rows of a NULL key: no restore takes them
            nullkeys.refuse(self.image.namespace, self.entry.name, self.primary_key, nulls,
                            buffered=True)
        if self.table_type == "user":
            users = pc.unique(rows.column(USER)).to_pylist()
            groups = [(u, rows.filter(pc.equal(rows.column(USER), u))) for u in users]
        else:
            groups = [(None, rows)]
        meta = {b"cairn.schema_version": str(self.schema_version).encode(),
                b"cairn.table_uid": self.table_uid.encode()}
        # A small buffer (one that went packed) is stored from memory: no file
        # unless the live count must read it (its rows hold an overwrite).
        small = self.packed is not None
        if not small:
            self.staging.mkdir(parents=True, exist_ok=True)
        out: list[FileToStore] = []
        names = itertools.count()

        def write(part: pa.Table) -> tuple[Path, int, str, bytes | None, list[Any]]:
            path = self.staging / f"{self.table_uid}-{next(names)}.parquet"
            footer: list[Any] = []
            data: bytes | None = None
            if small:
                data, sha = data_file_bytes(part, meta, footer=footer)
                size = len(data)
            else:
                size, sha = write_data_file(path, part, meta, sync=False, footer=footer)
            return path, size, sha, data, footer

        def footer_bytes(w: tuple[Path, int, str, bytes | None, list[Any]]) -> int:
            data = w[3]
            return footer_of(str(w[0])) if data is None else int.from_bytes(data[-8:-4], "little")

        for user, of_user in groups:  # as a flush writes them (fileparts.py)
            for part, (path, size, sha, data, footer) in write_parts(
                    of_user.combine_chunks(), write, footer_bytes,
                    lambda w: w[0].unlink(missing_ok=True)):
                if footer:  # the live count need not read its footer back
                    self.live.known[path] = first_only_rows(footer[0])
                if data is not None and self.live.known.get(path) is None:
                    # Its rows hold an overwrite (or its footer is unknown): the
                    # live count reads the file.
                    self.staging.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                seqs = part.column(SEQ)
                out.append(FileToStore(path, size, sha, FileEntry(
                    oid=sha, size=size, rows=part.num_rows, schema_version=self.schema_version,
                    user_id=user, min_seq=int(pc.min(seqs).as_py()), max_seq=int(pc.max(seqs).as_py()),
                    source="buffer", key_range=key_range(part, self.columns, self.primary_key),
                ), temporary=True, data=data))
        for item in out:
            self.entry.files.append(item.entry)
            self.entry.rows += item.entry.rows
            self.entry.max_seq = max(self.entry.max_seq, item.entry.max_seq)
            self.live.groups.setdefault(item.entry.user_id, []).append(item.path)
        self.image.files += out
        if self.spilled is not None:
            with contextlib.suppress(OSError):  # else the snapshot's release removes it
                self.spilled.unlink()


def _columns(columns: list[Column]) -> list[ColumnEntry]:
    return [ColumnEntry(**c) for c in columns]
