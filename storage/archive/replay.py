"""Replay: a base backup's tables plus archived changes, as of an instant.

`replay` applies changes (already checked by segment.decode) to the base
manifest's table entries in lsn order (a block of row changes, blocks.py, at its
first change: no DDL of its table falls inside it): CREATE adds a table (without the base's
files: a table dropped and created again never shows its predecessor's rows),
ALTER adds a schema version, DROP removes the table, and rows are collected per
table. `write_rows` then writes each table's replayed rows as Parquet files
laid out exactly as a flush writes them (conformed to the final schema, one
file per user for USER tables), so the restore registers them like any file.
Everything here is input read back from a target: a change that does not fit
(rows for a table that does not exist, a DDL document of the wrong shape, an
Arrow stream that does not decode, rows a backed-up file would be refused
for) is BACKUP_INVALID, naming the segment it is in."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from catalog import DataFile, Table
from catalog.errors import BackupInvalid

from ..backup.column_checks import Group
from ..backup.records import deep_problem
from ..backup.rowchecks import Checks, outside
from ..backup.rowversions import Versions
from ..backup.schema import TableEntry, check_table
from ..backup.seqs import LIMIT, restore_bound
from ..buffer import conform, decode, storage_schema
from ..fileparts import footer_of, write_parts
from ..files import FileStore
from ..keys import key_range
from ..timetext import instant
from ..types import OW, SEQ, USER
from .blocks import Entry, Rows
from .changes import ALTER, CREATE, DROP, NAMESPACE, ROWS
from .history import History


class _TableDoc(msgspec.Struct):
    name: str
    table_type: Literal["shared", "user", "stream"]
    schema_version: int
    primary_key: list[str]
    options: dict[str, Any]
    created_at: str


class _SchemaDoc(msgspec.Struct):
    version: int
    columns: list[dict[str, Any]]
    created_at: str


class _Ddl(msgspec.Struct):
    table: _TableDoc
    schema: _SchemaDoc


_ddl = msgspec.json.Decoder(_Ddl)


class _NamespaceDoc(msgspec.Struct, forbid_unknown_fields=True):
    created_at: str


_namespace = msgspec.json.Decoder(_NamespaceDoc)


def _is_instant(text: str) -> bool:
    """A namespace's created_at as a manifest's must be (backup/schema.py)."""
    try:
        when = instant(text) if len(text) <= 64 else None
        return when is not None and when.tzinfo is not None and bool(when.astimezone(dt.UTC))
    except (ValueError, OverflowError):
        return False


@dataclass
class Replayed:
    """One table after replay: its manifest-shaped entry (with the base's files
    if it is the base's table) and the row batches to add: (schema version,
    user, rows in the storage schema of that version)."""

    entry: dict[str, Any]
    batches: list[tuple[int, str | None, pa.Table]] = field(default_factory=list)
    base: bool = True  # the base's table (False: created by a replayed CREATE)
    # Per schema version: the table, its columns and storage schema, and the
    # checks of its rows (Replay._fit).
    fits: dict[int, tuple[Table, list[dict[str, Any]], pa.Schema, Checks]] = field(
        default_factory=dict, repr=False)
    # The row versions of every row replayed into the table (Replay._values),
    # and, for a key that is not one integer column, its first versions' keys
    # (to tell two of one hash apart: Versions.confirm).
    versions: Versions | None = field(default=None, repr=False)
    firsts: list[pa.Table] = field(default_factory=list, repr=False)
    # Its schema versions, checked (made at the first that needs them).
    known: History | None = field(default=None, repr=False)

    @property
    def history(self) -> History:
        if self.known is None:  # a base table: checked whole once, as `load` did
            e = self.entry
            self.known = History({**{k: v for k, v in e.items() if k != "live_rows"},
                                  "files": [], "rows": 0, "max_seq": 0})
        return self.known

    @property
    def rows_added(self) -> int:
        """Rows `write_rows` writes for this table (none for a STREAM table)."""
        if self.entry["table_type"] == "stream":
            return 0
        return sum(rows.num_rows for _, _, rows in self.batches)

    def first_versions_only(self) -> bool:
        """Every replayed row is its key's first version (none marked `_ow`:
        INSERTs of new keys, no UPDATE, DELETE or re-INSERT), so the table's
        live rows are its base's plus `rows_added` (what live_rows.count finds
        in the base's files and these: the same overwriting rows, and this
        many more first versions)."""
        for _, _, rows in self.batches:
            if OW not in rows.column_names:
                return False
            if pc.any(rows.column(OW)).as_py() is True:  # (a NULL _ow was refused)
                return False
        return True

    def close(self) -> None:
        if self.versions is not None:
            self.versions.close()


def replay(tables: list[dict[str, Any]], segments: Iterable[tuple[str, Iterable[Entry]]],
           what: str, seq_now: int = 0,
           record: dict[str, Any] | None = None) -> dict[str, Replayed]:
    """The tables (by name) after applying the changes of `segments` (each
    segment's file name and its changes, in commit order), restored on a
    server whose sequence is at `seq_now`. `record` (the base's
    namespace_record) takes the created_at of a replayed CREATE NAMESPACE."""
    r = Replay(tables, what, seq_now=seq_now)
    try:
        for name, changes in segments:
            r.segment = name
            for c in changes:
                r.apply(c)
        r.finish()
    finally:
        r.close()
    if record is not None and r.created_at is not None:
        record["created_at"] = r.created_at
    return r.tables


def _check_depth(data: bytes, where: str) -> None:
    """A DDL change's JSON nests no deeper than a manifest may: msgspec skips an
    unknown field's value, or reads `options` and `columns`, by recursing."""
    problem = deep_problem(data)
    if problem:
        raise BackupInvalid(f"{where} is corrupt: {problem}")


class _Drop(msgspec.Struct, forbid_unknown_fields=True):
    uid: str


_drop = msgspec.json.Decoder(_Drop)
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError,
                 ValueError, TypeError)


class Replay:
    """Changes applied one at a time, each checked before it counts. RESTORE
    keeps the rows (`keep_rows`); VERIFY ARCHIVE runs the same checks and
    keeps none, so the two agree on what restores:

    - a CREATE or ALTER leaves its table an entry the manifest's own decoder
      accepts (storage/backup/schema.py: column types, defaults, keys,
      versions), so no later step meets a type it cannot make;
    - a DROP's document is a DROP's;
    - rows have their schema version's storage schema (or cast to it), no
      NULL where that schema has none, row versions (`_seq`) a restore takes on
      a server whose sequence is at `seq_now` (backup/seqs.py), and a USER
      table's rows are all the block's user's;
    - rows are what a backed-up file of them would have to be (the same
      functions: storage/backup/rowchecks.py), in each block and (`finish`)
      across all the rows replayed into a table: RESTORE writes them into
      one file per table (per user), which a BACKUP copies.

    Callers set `segment` to the file name of the segment whose changes they
    apply next: every refusal names it."""

    def __init__(self, tables: list[dict[str, Any]], what: str, keep_rows: bool = True,
                 seq_now: int = 0) -> None:
        self.tables = {t["name"]: Replayed(copy.deepcopy(t)) for t in tables}
        self.created_at: str | None = None  # a replayed CREATE NAMESPACE's (None: the base's)
        self.what = what
        self.keep_rows = keep_rows
        self.max_seq = restore_bound(seq_now)
        self.segment = ""

    def apply(self, c: Entry) -> None:
        out = self.tables
        at = f"{self.what}: segment {self.segment}" if self.segment else self.what
        if isinstance(c, Rows):
            where = f"{at}: changes {c.lsns[0]}..{c.lsns[-1]} (rows {c.table})"
            self._rows(c.table, c.version, c.user, c.rows, where, ("write", "are", "block"))
            return
        where = f"{at}: change {c.lsn} ({c.kind} {c.table})"
        if c.kind == ROWS:  # format 1: one statement's Arrow stream
            if c.table not in out:
                raise BackupInvalid(f"{where} writes to a table that does not exist")
            try:
                batch = decode(b"", c.data)
            except (pa.ArrowInvalid, KeyError, ValueError, TypeError) as exc:
                raise BackupInvalid(f"{where} is corrupt: {exc}") from None
            self._rows(c.table, batch.version, batch.user, batch.rows, where,
                       ("writes", "is", "change"))
        elif c.kind in (CREATE, ALTER):
            _check_depth(c.data, where)
            try:
                doc = _ddl.decode(c.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise BackupInvalid(f"{where} is corrupt: {exc}") from None
            if doc.table.name != c.table or doc.table.schema_version != doc.schema.version:
                raise BackupInvalid(f"{where} is corrupt: its records disagree")
            schema = {"version": doc.schema.version, "columns": doc.schema.columns,
                      "created_at": doc.schema.created_at}
            if c.kind == CREATE:
                if c.table in out:
                    raise BackupInvalid(f"{where} creates a table that exists")
                made = Replayed(base=False, entry={
                    "name": doc.table.name, "table_type": doc.table.table_type,
                    "schema_version": doc.table.schema_version,
                    "primary_key": doc.table.primary_key, "options": doc.table.options,
                    "created_at": doc.table.created_at, "schemas": [schema], "files": [],
                    "rows": 0, "max_seq": 0,
                })
                made.known = History(made.entry, _check_entry(made.entry, where))
                out[c.table] = made
            else:
                target = out.get(c.table)
                if target is None or doc.schema.version <= int(target.entry["schema_version"]):
                    raise BackupInvalid(f"{where} alters a table that does not exist "
                                        "or goes back a schema version")
                # Checked against what the versions before it hold, not with
                # each of them again (history.py: O(V^2) for V versions)
                try:
                    target.history.add(target.entry, schema)
                except BackupInvalid as exc:
                    raise BackupInvalid(f"{where} is corrupt: {exc.message}") from None
        elif c.kind == NAMESPACE:  # the name created again after a DROP NAMESPACE
            _check_depth(c.data, where)
            try:
                doc_ns = _namespace.decode(c.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise BackupInvalid(f"{where} is corrupt: {exc}") from None
            if not _is_instant(doc_ns.created_at):
                raise BackupInvalid(f"{where} is corrupt: created_at is not a UTC timestamp")
            if out:
                raise BackupInvalid(f"{where} is corrupt: it creates the namespace while "
                                    "the namespace has tables")
            self.created_at = doc_ns.created_at
        elif c.kind == DROP:
            _check_depth(c.data, where)
            try:
                _drop.decode(c.data)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                raise BackupInvalid(f"{where} is corrupt: {exc}") from None
            dropped = out.pop(c.table, None)
            if dropped is None:
                raise BackupInvalid(f"{where} drops a table that does not exist")
            dropped.close()

    def finish(self) -> None:
        """After the last change: the rows replayed into each table, all
        together, are row versions Cairn could have written (a key's first
        version twice, or one `_seq` twice, in two blocks), else
        BACKUP_INVALID naming the segments holding them."""
        for name, t in self.tables.items():
            v = t.versions
            if v is None:
                continue
            try:
                wrong = v.done()
                if wrong is None and v.suspects:
                    wrong = v.confirm(b for f in t.firsts for b in f.to_batches())
            except Exception as exc:  # noqa: BLE001 - as contents.values_problem: damage
                wrong = f"cannot be read ({type(exc).__name__})"
            if wrong is not None:
                held = v.found_in or [self.segment]
                if len(held) == 1:
                    segs, them = f"segment {held[0]} is", "it"
                else:
                    segs, them = f"segments {', '.join(held[:-1])} and {held[-1]} are", "them"
                raise BackupInvalid(f"{self.what}: {segs} corrupt: table '{name}' as "
                                    f"replayed from {them} {wrong}")

    def close(self) -> None:
        """What the checks of the tables' rows hold open (DuckDB's hash())."""
        for t in self.tables.values():
            t.close()

    def _rows(self, table: str, version: int, user: str | None, rows: pa.Table, where: str,
              verbs: tuple[str, str, str]) -> None:
        """Rows of `table` written under schema `version` (by `user`), checked
        and kept; `verbs` agree with `where` (a block's changes or one change)."""
        write, be, noun = verbs
        target = self.tables.get(table)
        if target is None:
            raise BackupInvalid(f"{where} {write} to a table that does not exist")
        if version not in target.history or SEQ not in rows.column_names:
            raise BackupInvalid(f"{where} {be} corrupt: rows of an unknown schema version")
        if (user is None) != (target.entry["table_type"] != "user"):
            raise BackupInvalid(f"{where} {be} corrupt: rows of a USER table name their "
                                "user, and only they do")
        fitted = self._fit(target, version, user, rows, where)
        self._values(target, version, fitted, f"{where} {be} corrupt: the {noun}")
        if self.keep_rows:
            target.batches.append((version, user, rows))

    def _fit(self, target: Replayed, version: int, user: str | None, rows: pa.Table,
             where: str) -> pa.Table:
        """Rows as their schema version stores them (returned), or refused
        (what write_rows conforms later cannot fail then)."""
        known = target.fits.get(version)
        if known is None:
            e, history = target.entry, target.history
            columns = history.columns(version)
            table = Table(namespace="", name=e["name"], uid="", table_type=e["table_type"],
                          schema_version=version, primary_key=list(e["primary_key"]))
            known = target.fits[version] = (table, columns, storage_schema(table, columns),
                                            Checks(history.of(version), version))
        table, columns, strict, _ = known
        if not rows.schema.equals(strict):
            try:
                loose = pa.schema([f.with_nullable(True) for f in strict])
                rows = conform(rows, version, table, columns).cast(loose)
            except _ARROW_ERRORS as exc:
                raise BackupInvalid(f"{where} are corrupt: they do not fit schema version "
                                    f"{version}: {exc}") from None
        for f in strict:
            if not f.nullable and rows.column(f.name).null_count:
                raise BackupInvalid(f"{where} are corrupt: NULL in column '{f.name}'")
        if rows.num_rows:  # row versions a restore takes (backup/seqs.py)
            bounds = pc.min_max(rows.column(SEQ))
            if bounds["min"].as_py() < 0:
                raise BackupInvalid(f"{where} are corrupt: a row version (_seq) is negative")
            if bounds["max"].as_py() > self.max_seq:
                raise BackupInvalid(f"{where} are corrupt: a row version (_seq) is "
                                    f"{bounds['max'].as_py()}: {LIMIT}")
        if user is not None and rows.num_rows:
            owners = rows.column(USER)
            if not pc.all(pc.equal(owners, user)).as_py():
                raise BackupInvalid(f"{where} are corrupt: rows of another user than "
                                    f"'{user}'")
        return rows

    def _values(self, target: Replayed, version: int, rows: pa.Table, refused: str) -> None:
        """`rows` (as `_fit` gave them) checked as a backed-up file's values
        are (rowchecks.py), their row versions with every row replayed into
        the table before them; BACKUP_INVALID: `refused` and what is wrong."""
        if not rows.num_rows or target.entry["table_type"] == "stream":
            return  # (a STREAM table's rows are never written, nor backed up)
        checks = target.fits[version][3]
        if target.versions is None:
            target.versions = Versions(checks.keys)
        try:
            for batch in rows.combine_chunks().to_batches():
                wrong = None
                for name in checks.bounded:
                    wrong = wrong or outside(batch.column(name), name, None, None)
                wrong = wrong or checks.add(batch, Group(checks.columns, {}), target.versions,
                                            source=self.segment)
                if wrong is not None:
                    raise BackupInvalid(f"{refused} {wrong}")
            key = rows.schema.field(checks.keys[0]).type
            if len(checks.keys) > 1 or not pa.types.is_integer(key):
                firsts = rows.select([*checks.keys, OW]).filter(pc.invert(rows.column(OW)))
                target.firsts.append(firsts.cast(  # one schema for all (Versions.confirm)
                    pa.schema([f.with_nullable(True) for f in firsts.schema])))
        except BackupInvalid:
            raise
        except Exception as exc:  # noqa: BLE001 - as contents.values_problem: damage
            raise BackupInvalid(f"{refused} cannot be read ({type(exc).__name__})") from None


def _check_entry(entry: dict[str, Any], where: str) -> TableEntry:
    try:
        return check_table(entry)
    except BackupInvalid as exc:
        raise BackupInvalid(f"{where} is corrupt: {exc.message}") from None


def write_rows(files: FileStore, namespace: str, uid: str, t: Replayed) -> list[DataFile]:
    """The replayed rows of one table as registered-to-be Parquet files under
    `files/<uid>/`, as a flush would write them (conformed to the final schema)."""
    if not t.batches or t.entry["table_type"] == "stream":
        return []
    e = t.entry
    version = int(e["schema_version"])
    current = next(s for s in e["schemas"] if int(s["version"]) == version)
    columns = current["columns"]
    table = Table(namespace=namespace, name=e["name"], uid=uid, table_type=e["table_type"],
                  schema_version=version, primary_key=list(e["primary_key"]),
                  options=dict(e.get("options") or {}))
    loose = pa.schema([f.with_nullable(True) for f in storage_schema(table, columns)])
    # Rows written under one schema version are conformed together (one Arrow
    # concat and cast per version, not per statement).
    by_version: dict[tuple[str | None, int], list[pa.Table]] = {}
    for v, user, rows in t.batches:
        key = user if table.table_type == "user" else None
        by_version.setdefault((key, v), []).append(rows)
    groups: dict[str | None, list[pa.Table]] = {}
    try:
        for (key, v), parts in by_version.items():
            rows = pa.concat_tables(parts, promote_options="permissive")
            groups.setdefault(key, []).append(conform(rows, v, table, columns).cast(loose))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise BackupInvalid(f"archived rows of table '{e['name']}' do not fit its schema: "
                            f"{exc}") from None
    out = []
    for user, parts in groups.items():
        rows = pa.concat_tables(parts).combine_chunks()
        meta = {b"cairn.schema_version": str(version).encode(), b"cairn.table_uid": uid.encode()}
        for part, (file_id, rel, size, sha) in write_parts(  # as a flush (fileparts.py)
                rows, partial(files.write, uid, metadata=meta),
                lambda w: footer_of(str(files.abs(w[1]))), lambda w: files.retire([w[1]])):
            seqs = part.column(SEQ)
            out.append(DataFile(
                table_uid=uid, file_id=file_id, path=rel, rows=part.num_rows, bytes=size,
                sha256=sha, schema_version=version, user_id=user,
                min_seq=int(pc.min(seqs).as_py()), max_seq=int(pc.max(seqs).as_py()),
                key_range=key_range(part, columns, table.primary_key),
            ))
    return out
