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
Arrow stream that does not decode) is BACKUP_INVALID."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from catalog import DataFile, Table
from catalog.errors import BackupInvalid

from ..buffer import conform, decode, storage_schema
from ..files import FileStore
from ..keys import key_range
from ..types import OW, SEQ
from .blocks import Entry, Rows
from .changes import ALTER, CREATE, DROP, ROWS


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


@dataclass
class Replayed:
    """One table after replay: its manifest-shaped entry (with the base's files
    if it is the base's table) and the row batches to add: (schema version,
    user, rows in the storage schema of that version)."""

    entry: dict[str, Any]
    batches: list[tuple[int, str | None, pa.Table]] = field(default_factory=list)
    base: bool = True  # the base's table (False: created by a replayed CREATE)

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
            if pc.any(rows.column(OW)).as_py() is True:  # null is a first version too
                return False
        return True


def replay(tables: list[dict[str, Any]], changes: Iterable[Entry],
           what: str) -> dict[str, Replayed]:
    """The tables (by name) after applying `changes`."""
    out = {t["name"]: Replayed(copy.deepcopy(t)) for t in tables}
    for c in changes:
        if isinstance(c, Rows):
            _add_block(out, c, what)
            continue
        where = f"{what}: change {c.lsn} ({c.kind} {c.table})"
        if c.kind == ROWS:
            target = out.get(c.table)
            if target is None:
                raise BackupInvalid(f"{where} writes to a table that does not exist")
            try:
                batch = decode(b"", c.data)
            except (pa.ArrowInvalid, KeyError, ValueError, TypeError) as exc:
                raise BackupInvalid(f"{where} is corrupt: {exc}") from None
            versions = {int(s["version"]) for s in target.entry["schemas"]}
            if batch.version not in versions or SEQ not in batch.rows.column_names:
                raise BackupInvalid(f"{where} is corrupt: rows of an unknown schema version")
            if (batch.user is None) != (target.entry["table_type"] != "user"):
                raise BackupInvalid(f"{where} is corrupt: rows of a USER table name their "
                                    "user, and only they do")
            target.batches.append((batch.version, batch.user, batch.rows))
        elif c.kind in (CREATE, ALTER):
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
                out[c.table] = Replayed(base=False, entry={
                    "name": doc.table.name, "table_type": doc.table.table_type,
                    "schema_version": doc.table.schema_version,
                    "primary_key": doc.table.primary_key, "options": doc.table.options,
                    "created_at": doc.table.created_at, "schemas": [schema], "files": [],
                    "rows": 0, "max_seq": 0,
                })
            else:
                target = out.get(c.table)
                if target is None or doc.schema.version <= int(target.entry["schema_version"]):
                    raise BackupInvalid(f"{where} alters a table that does not exist "
                                        "or goes back a schema version")
                target.entry["schemas"].append(schema)
                target.entry["schema_version"] = doc.schema.version
        elif c.kind == DROP and out.pop(c.table, None) is None:
            raise BackupInvalid(f"{where} drops a table that does not exist")
    return out


def _add_block(out: dict[str, Replayed], b: Rows, what: str) -> None:
    where = f"{what}: changes {b.lsns[0]}..{b.lsns[-1]} (rows {b.table})"
    target = out.get(b.table)
    if target is None:
        raise BackupInvalid(f"{where} write to a table that does not exist")
    if b.version not in {int(s["version"]) for s in target.entry["schemas"]}:
        raise BackupInvalid(f"{where} are corrupt: rows of an unknown schema version")
    if (b.user is None) != (target.entry["table_type"] != "user"):
        raise BackupInvalid(f"{where} are corrupt: rows of a USER table name their user, "
                            "and only they do")
    target.batches.append((b.version, b.user, b.rows))


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
        file_id, rel, size, sha = files.write(uid, rows, meta)
        seqs = rows.column(SEQ)
        out.append(DataFile(
            table_uid=uid, file_id=file_id, path=rel, rows=rows.num_rows, bytes=size,
            sha256=sha, schema_version=version, user_id=user,
            min_seq=int(pc.min(seqs).as_py()), max_seq=int(pc.max(seqs).as_py()),
            key_range=key_range(rows, columns, table.primary_key),
        ))
    return out
