"""The tables a server holds: their records in the catalog and their state in
memory (`TableState`), and every change to which tables exist.

Locks, always taken in this order: a table's `flush_lock` -> its `write_lock`
-> the registry's `ddl` lock -> a table's `lock`. `ddl` is held by everything
that changes which tables or namespaces exist or what their schemas are
(CREATE/DROP/ALTER TABLE, CREATE/DROP NAMESPACE, a restore's install), and by
a snapshot while it pins what it copies: so a snapshot sees each such change
wholly before or wholly after it, never half of a DROP NAMESPACE … CASCADE."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from catalog import (
    Catalog,
    DataFile,
    Meta,
    Namespace,
    Table,
    TableSchema,
    schema_key,
    table_key,
)
from catalog.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from catalog.ids import new_id
from catalog.records import SEP, utcnow

from . import bufclock, bufstore, nanstats, schema, stopping, timing
from .archive import changes as change_log
from .backup.restored_tables import dropped
from .batch import BatchMap
from .buffer import APPEND_ONLY, DamagedBuffer, TableState, decode
from .files import FileStore
from .keys import FileRanges
from .lockset import all_held
from .resolve import WRITE_ATTEMPTS

log = logging.getLogger("cairn.storage")

RESERVED_NAMESPACES = frozenset({"system", "information_schema", "main", "temp", "pg_catalog"})


def after(created: str, dropped: str | None) -> str:
    """`created`, or a millisecond after `dropped` (the creation time of the
    namespace of that name dropped before) when it is the same instant: a DROP
    and CREATE in one millisecond stamped the new namespace as the old one, and
    keep_last took the old one's backups for its own (storage/backup/origin.py)."""
    if dropped is None:
        return created
    try:
        old = datetime.fromisoformat(dropped)
        new = datetime.fromisoformat(created)
    except ValueError:
        return created
    if old.tzinfo is None:
        old = old.replace(tzinfo=UTC)
    if new.replace(tzinfo=new.tzinfo or UTC) != old:
        return created
    return (old + timedelta(milliseconds=1)).astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Registry:
    """Tables by record and by state. Thread-safe."""

    def __init__(self, catalog: Catalog, files: FileStore, ranges: FileRanges,
                 changes: change_log.ChangeLog) -> None:
        self.catalog = catalog
        # The change log of archived namespaces: every DDL commit passes through
        # its namespace's commit lock (storage/archive/changes.py).
        self.changes = changes
        self.files = files
        self.ranges = ranges
        self.ddl = threading.RLock()
        self._lock = threading.RLock()
        self._states: dict[str, TableState] = {}
        self._records: dict[str, tuple[bytes, Table]] = {}
        self._said: set[str] = set()  # tables whose damaged buffer was logged
        # The creation time of each namespace dropped since the start, by name
        # (`after`: a namespace created again is never stamped the same).
        self._dropped: dict[str, str] = {}
        # Before any table is read: the old layout's families move into one.
        bufstore.migrate(catalog)
        nanstats.mend_data_dir(catalog, files)  # once: files whose statistics hide NaN rows

    # --- lookups ---------------------------------------------------------

    def table(self, namespace: str, name: str) -> Table:
        """The table's record, or NOT_FOUND naming the namespace or the table.
        Decoded once per stored version (records are never changed in place)."""
        key = table_key(namespace, name)
        raw = self.catalog.get_raw(Table.FAMILY, key.encode())
        cached = self._records.get(key)
        if raw is not None and cached is not None and cached[0] == raw:
            return cached[1]
        rec = Table.loads(raw) if raw is not None else None
        if rec is not None:
            if len(self._records) > 10_000:
                self._records.clear()
            self._records[key] = (raw, rec)  # type: ignore[assignment]
        if rec is None:
            if namespace == "system":
                raise InvalidArgument("system tables are read-only")
            if self.catalog.get(Namespace, namespace) is None:
                raise NotFound(f"Namespace '{namespace}' does not exist")
            raise NotFound(f"Table '{namespace}.{name}' does not exist")
        return rec

    def state(self, namespace: str, name: str) -> TableState:
        rec = self.table(namespace, name)
        try:
            return self.state_for(rec)
        except NotFound:  # replaced since the lookup (a restore's install): look again
            now = self.table(namespace, name)
            if (now.uid, now.schema_version) == (rec.uid, rec.schema_version):
                raise
            return self.state_for(now)

    def state_for(self, rec: Table) -> TableState:
        with timing.taking(self._lock, "table registry"):
            st = self._states.get(rec.uid)
            if st is None or st.table.schema_version != rec.schema_version:
                st = self._load(rec, st)
                self._states[rec.uid] = st
            return st

    def _load(self, rec: Table, old: TableState | None) -> TableState:
        sch = self.catalog.get(TableSchema, schema_key(rec.uid, rec.schema_version))
        if sch is None:
            raise NotFound(f"schema version {rec.schema_version} of {rec.namespace}.{rec.name} is missing")
        if old is not None:  # a schema change made elsewhere: keep locks and buffer
            old.replace_definition(rec, sch)
            return old
        files = self.catalog.scan(DataFile, rec.uid + SEP)
        try:
            batches = BatchMap((key, decode(key, value))
                               for key, value in bufstore.entries(self.catalog, rec.uid))
        except DamagedBuffer as exc:
            if rec.uid not in self._said:  # once, not at every statement or flush tick
                self._said.add(rec.uid)
                log.warning("table %s.%s cannot be read: its write buffer (RocksDB family "
                            "%s, keys %r…) is damaged: %s", rec.namespace, rec.name,
                            bufstore.FAMILY, bufstore.prefix(rec.uid), exc.message)
            raise DamagedBuffer(
                f"Table '{rec.namespace}.{rec.name}' cannot be read: its buffered rows are "
                "damaged (the data directory is damaged or was changed outside the server; "
                "the server log says more). DROP TABLE still drops it") from None
        for newest in batches.tail(1):  # rows' ages never start below zero
            bufclock.floor_at(newest.ts)
        append_only = self.catalog.get(Meta, APPEND_ONLY + rec.uid) is not None
        return TableState(rec, sch, files, batches, append_only)

    def states(self, namespace: str | None = None) -> list[TableState]:
        """Every table's state; a table dropped (or changed) between the scan
        and its load is left out, or taken as it is now (it was NOT_FOUND
        "schema version 1 of ns.t is missing" for a namespace that exists,
        and a traceback in the automatic flush loop)."""
        prefix = namespace + SEP if namespace else ""
        out = []
        for t in self.catalog.scan(Table, prefix):
            try:
                out.append(self.state_for(t))
            except NotFound:
                now = self.catalog.get(Table, t.key())
                if now is None or now.uid != t.uid:
                    continue  # dropped since the scan
                if now.schema_version == t.schema_version:
                    raise  # no race: the catalog is missing the schema
                out.append(self.state_for(now))
        return out

    def healthy_states(self) -> list[TableState]:
        """Every table but those whose buffer is damaged (DamagedBuffer): the
        automatic flush and stream eviction of the others go on (the loop died
        at the damaged one every second, and no table was flushed any more)."""
        out = []
        for t in self.catalog.scan(Table, ""):
            with contextlib.suppress(DamagedBuffer, NotFound):  # NotFound: dropped meanwhile
                out.append(self.state_for(t))
        return out

    def list_tables(self, namespace: str | None = None) -> list[Table]:
        return self.catalog.scan(Table, namespace + SEP if namespace else "")

    def schemas(self, table_uid: str) -> list[TableSchema]:
        """Every schema version of a table, oldest first."""
        return self.catalog.scan(TableSchema, table_uid + SEP)

    def schemas_named(self, namespace: str, name: str) -> list[TableSchema]:
        """Every schema version of the table `namespace.name`, oldest first. A
        table swapped by a RESTORE ... WITH (replace = true) between its lookup
        and the read of its schemas (gone with the old table: DESCRIBE TABLE
        was a 500) is looked up again."""
        seen = None
        for _ in range(WRITE_ATTEMPTS):
            uid = self.table(namespace, name).uid
            if versions := self.schemas(uid):
                return versions
            if uid == seen:  # not replaced: the catalog lacks them
                raise NotFound(f"the schema versions of {namespace}.{name} are missing")
            seen = uid
        raise Unavailable(f"Table '{namespace}.{name}' kept being replaced while its schema "
                          "was read (a restore or DDL in a loop): run it again")

    def forget(self, table_uid: str) -> None:
        """Drop the in-memory state of a table changed behind the registry's back;
        it is reloaded from the catalog on next use. If no Table record names this
        uid any more, statements still waiting on the old state fail with
        NOT_FOUND instead of writing into it."""
        with self._lock:
            st = self._states.pop(table_uid, None)
        if st is not None:
            current = self.catalog.get(Table, st.table.key())
            if current is None or current.uid != table_uid:
                st.mark_dropped()

    # --- namespaces ------------------------------------------------------

    def create_namespace(self, name: str, *, if_not_exists: bool = False) -> bool:
        """Create an empty namespace; False if it existed and `if_not_exists`."""
        if name in RESERVED_NAMESPACES:
            raise InvalidArgument(f"Namespace name '{name}' is reserved")
        with self.ddl:
            if self.catalog.get(Namespace, name) is not None:
                if if_not_exists:
                    return False
                raise AlreadyExists(f"Namespace '{name}' already exists")
            stopping.commit_point()  # cancelled while it waited for `ddl`: nothing is made
            rec = Namespace(name, created_at=after(utcnow(), self._dropped.get(name)))
            # Archived when the name is (a DROP NAMESPACE while archiving): a
            # restore to a time after it gives the new namespace's created_at.
            with self.changes.committing(name) as log_, self.catalog.atomic() as b:
                b.put(rec)
                if log_ is not None:
                    log_.add(b, change_log.NAMESPACE, change_log.NAMESPACE_TABLE,
                             change_log.ddl(created_at=rec.created_at))
        return True

    def drop_namespace(self, name: str, *, cascade: bool = False, if_exists: bool = False) -> bool:
        """Drop a namespace and, with `cascade`, its tables: all in one catalog
        batch, so no reader (or snapshot) ever sees part of it gone."""
        while True:
            states = sorted(self.states(name), key=lambda s: s.uid)
            with all_held(states), self.ddl:
                if (gone := self.catalog.get(Namespace, name)) is None:
                    if if_exists:
                        return False
                    raise NotFound(f"Namespace '{name}' does not exist")
                tables = self.catalog.scan(Table, name + SEP)
                if tables and not cascade:
                    raise InvalidArgument(
                        f"Namespace '{name}' has {len(tables)} table(s); use DROP NAMESPACE "
                        f"{name} CASCADE to drop them too"
                    )
                if sorted(t.uid for t in tables) != [s.uid for s in states]:
                    continue  # a table came or went meanwhile: lock the new set
                stopping.commit_point()  # cancelled while it waited: nothing dropped
                batch = self.catalog.batch()
                paths = self.remove_tables(batch, states)
                self._dropped[name] = gone.created_at
                batch.delete(Namespace, name)
                self.commit_removal(batch, states)
            self.after_remove(states)
            self.retire(paths)
            return True

    # --- tables ----------------------------------------------------------

    def create_table(
        self,
        namespace: str,
        name: str,
        kind: str,
        columns: list[Any],
        options: dict[str, Any] | None = None,
        *,
        if_not_exists: bool = False,
    ) -> Table | None:
        """Create a table; None if it existed and `if_not_exists`."""
        if namespace == "system":
            raise InvalidArgument("namespace 'system' is reserved")
        cols, key = schema.new_columns(kind, list(columns))
        opts = schema.check_options(kind, dict(options or {}))
        with self.ddl:
            if self.catalog.get(Namespace, namespace) is None:
                raise NotFound(f"Namespace '{namespace}' does not exist")
            if self.catalog.get(Table, table_key(namespace, name)) is not None:
                if if_not_exists:
                    return None
                raise AlreadyExists(f"Table '{namespace}.{name}' already exists")
            rec = Table(namespace, name, new_id("tbl"), kind, 1, key, opts)
            sch = TableSchema(rec.uid, 1, namespace, name, cols, rec.created_at)
            schema.check_history(self.catalog, sch, f"CREATE TABLE {namespace}.{name}")
            stopping.commit_point()  # cancelled while it waited for `ddl`: nothing is made
            with self.changes.committing(namespace) as log_, self.catalog.atomic() as b:
                b.put(rec).put(sch).put(Meta(APPEND_ONLY + rec.uid, True))
                if log_ is not None:
                    log_.add(b, change_log.CREATE, name, change_log.ddl(table=rec, schema=sch))
            with self._lock:
                self._states[rec.uid] = TableState(rec, sch, [], BatchMap(), True)
        return rec

    def drop_table(self, namespace: str, name: str, *, if_exists: bool = False) -> bool:
        """Drop a table: its records go in one batch, then its buffer family, then
        its files (each as soon as no reader or backup pins it). A table a
        RESTORE ... WITH (replace = true) swapped while the DROP waited for its
        locks is looked up again: the new one is dropped (it answered NOT_FOUND,
        or "does not exist, skipped", and left the table there)."""
        for _ in range(WRITE_ATTEMPTS):
            try:
                st = self.state(namespace, name)
            except NotFound:
                if if_exists:
                    return False
                raise
            except DamagedBuffer:  # its buffer goes with it: a state without one drops it
                rec = self.table(namespace, name)
                sch = self.catalog.get(TableSchema, schema_key(rec.uid, rec.schema_version))
                if sch is None:
                    raise
                st = TableState(rec, sch, self.catalog.scan(DataFile, rec.uid + SEP), BatchMap(),
                                self.catalog.get(Meta, APPEND_ONLY + rec.uid) is not None)
            with st.flush_lock, st.write_lock, self.ddl:
                if st.dropped:  # dropped or replaced meanwhile: look the name up again
                    continue
                stopping.commit_point()  # cancelled while it waited for the locks: nothing dropped
                batch = self.catalog.batch()
                paths = self.remove_tables(batch, [st])
                space = self.catalog.get(Namespace, namespace)  # its RESTORE TABLEs: dropped
                if space is not None and (kept := dropped(space.restored_tables, name)) is not None:
                    batch.put(dataclasses.replace(space, restored_tables=kept))
                self.commit_removal(batch, [st])
            self.after_remove([st])
            self.retire(paths)
            return True
        raise Unavailable(f"Table '{namespace}.{name}' kept being replaced while DROP TABLE "
                          "waited for it (a restore or DDL in a loop): run it again")

    def remove_tables(self, batch: Any, states: list[TableState]) -> list[str]:
        """Add the deletion of these tables' records to `batch` (the caller
        holds their flush and write locks and `ddl`); their file paths."""
        paths: list[str] = []
        for st in states:
            batch.delete(Table, st.table.key())
            for s in self.catalog.scan(TableSchema, st.uid + SEP):
                batch.delete(TableSchema, s.key())
            for f in self.catalog.scan(DataFile, st.uid + SEP):
                batch.delete(DataFile, f.key())
                paths.append(f.path)
            batch.delete(Meta, APPEND_ONLY + st.uid)
        return paths

    def commit_removal(self, batch: Any, states: list[TableState]) -> None:
        """Commit a batch that removes these tables, with their `lock`s held so
        no query copies a table half gone; their states are emptied with it."""
        with contextlib.ExitStack() as held:
            for st in sorted(states, key=lambda s: s.uid):
                held.enter_context(st.lock)
            namespaces = sorted({st.table.namespace for st in states})
            with contextlib.ExitStack() as logs:
                for ns in namespaces:
                    log_ = logs.enter_context(self.changes.committing(ns))
                    if log_ is None:
                        continue
                    for st in states:
                        if st.table.namespace == ns and not st.dropped:
                            log_.add(batch, change_log.DROP, st.table.name,
                                     change_log.ddl(uid=st.uid))
                batch.commit()
            for st in states:
                st.mark_dropped()
        with self._lock:
            for st in states:
                self._states.pop(st.uid, None)

    def after_remove(self, states: list[TableState]) -> None:
        """Once removed: the tables' buffers go."""
        bufstore.drop(self.catalog, [st.uid for st in states])

    def retire(self, paths: list[str]) -> None:
        self.files.retire(paths)
        self.ranges.forget(paths)

    def alter(self, namespace: str, name: str,
              change: Callable[[TableSchema], list[Any] | None]) -> TableSchema | None:
        """Change a table's columns (None: `change` found nothing to change,
        under the same locks, and nothing is written). A table a RESTORE ... WITH (replace = true)
        swapped while the ALTER waited for its locks is looked up again and the
        new one changed (it answered NOT_FOUND for a table there throughout);
        one dropped meanwhile is NOT_FOUND."""
        for _ in range(WRITE_ATTEMPTS):
            st = self.state(namespace, name)
            with st.flush_lock, st.write_lock, self.ddl:
                if st.dropped:  # dropped or replaced meanwhile: look the name up again
                    continue
                cur = st.schema
                cols = change(cur)
                if cols is None:
                    return None
                new = TableSchema(st.uid, cur.version + 1, namespace, name, cols)
                rec = Table(**{**st.table.__dict__, "schema_version": new.version})
                schema.check_history(self.catalog, new, f"ALTER TABLE {namespace}.{name}")
                stopping.commit_point()  # cancelled while it waited for the locks: unchanged
                with st.lock, self.changes.committing(namespace) as log_:
                    b = self.catalog.batch().put(rec).put(new)
                    if log_ is not None:
                        log_.add(b, change_log.ALTER, name, change_log.ddl(table=rec, schema=new))
                    b.commit()
                    st.replace_definition(rec, new)
            return new
        raise Unavailable(f"Table '{namespace}.{name}' kept being replaced while ALTER TABLE "
                          "waited for it (a restore or DDL in a loop): run it again")

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Hold `ddl`: no table or namespace appears, goes or changes schema."""
        with self.ddl:
            yield
