"""The manifest's one typed definition (msgspec Structs) and every check made on a manifest
read back from a target.

A manifest is untrusted input: anyone who can write to a target can recompute its checksum.
`load` decodes it strictly (types, ranges, no unknown keys) and then checks what types cannot
say (unique names, a primary key naming a column of the current schema, each file naming an
existing schema version, totals adding up, times that exist in UTC). Whatever passes is safe
to install: every integer fits the type it reaches (RocksDB keys, Arrow int64, DuckDB), every
column type is one Cairn knows, every name is one Cairn could have made. RESTORE, VERIFY,
SHOW BACKUP(S), prune and archives all read manifests through this module."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from catalog.errors import BackupInvalid, InvalidArgument

from .. import timetext
from ..schema import MAX_COLUMNS, RESERVED_COLUMNS, SYSTEM_COLUMNS, check_options, system_column
from ..types import MAX_TEXT_LENGTH, TYPE_NAMES, canonical_type, stored_value
from .seqs import MAX_SEQ  # at most 2^62; what a restore takes is lower (seqs.py)

FORMAT, FORMAT_VERSION = "cairn-backup", 1
ZSTD = "zstd"
AES = "aes-256-gcm"
KNOWN_FEATURES: frozenset[str] = frozenset({ZSTD, AES})

INT64_MAX = 2**63 - 1
MAX_SCHEMA_VERSION = 2**31 - 1
NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,63}\Z"
RESERVED_NAMESPACES = frozenset({"system", "information_schema", "main", "temp", "pg_catalog"})
TABLE_TYPES = ("shared", "user", "stream")

Count = Annotated[int, Meta(ge=0, le=INT64_MAX)]
Seq = Annotated[int, Meta(ge=0, le=MAX_SEQ)]
Version = Annotated[int, Meta(ge=1, le=MAX_SCHEMA_VERSION)]
Name = Annotated[str, Meta(pattern=NAME_PATTERN)]
Oid = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
BackupId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")]
KeyId = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}\Z")]
ArchiveId = Annotated[str, Meta(pattern=r"^ar-[0-9a-z]{20}\Z")]
ServerId = Annotated[str, Meta(pattern=r"^sv-[0-9a-z]{20}\Z")]
Lsn = Annotated[int, Meta(ge=0, le=INT64_MAX)]
Time = Annotated[str, Meta(min_length=1, max_length=64)]
UserId = Annotated[str, Meta(min_length=1, max_length=1024)]
LABEL_MAX = 65536  # characters (BACKUP checks its option before a job starts)
Label = Annotated[str, Meta(max_length=LABEL_MAX)]
Scalar = str | int | float | bool | None
KeyValue = int | str
Feature = Literal["zstd", "aes-256-gcm"]
T = TypeVar("T")


class _Strict(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Column(_Strict, kw_only=True):
    """A column as `TableSchema.columns` holds it (see storage/types.py)."""

    name: Annotated[str, Meta(min_length=1, max_length=64)]
    type: str
    params: Annotated[list[Annotated[int, Meta(ge=0, le=MAX_TEXT_LENGTH)]], Meta(max_length=2)]
    not_null: bool
    primary_key: bool
    has_default: bool
    default: Scalar
    system: bool
    since: Version


class SchemaEntry(_Strict, kw_only=True):
    version: Version
    columns: Annotated[list[Column], Meta(min_length=1, max_length=MAX_COLUMNS)]
    created_at: Time


class FileEntry(_Strict, kw_only=True):
    """One Parquet file of a table. `size` and `sha256` are the file's own; `oid`
    names the object holding it (the sha256 itself for a raw plain object)."""

    oid: Oid
    size: Count
    sha256: Oid | None = None
    rows: Count
    schema_version: Version
    user_id: UserId | None = None
    min_seq: Seq
    max_seq: Seq
    source: Literal["parquet", "buffer"]
    key_range: dict[str, Annotated[list[KeyValue], Meta(min_length=2, max_length=2)]] = {}

    @property
    def content_sha256(self) -> str:
        return self.sha256 or self.oid


class TableEntry(_Strict, kw_only=True):
    name: Name
    table_type: Literal["shared", "user", "stream"]
    schema_version: Version
    primary_key: Annotated[list[Name], Meta(min_length=1, max_length=64)]
    options: dict[str, int | float]
    created_at: Time
    schemas: Annotated[list[SchemaEntry], Meta(min_length=1)]
    files: list[FileEntry]
    rows: Count  # stored row versions (every file's rows)
    max_seq: Seq
    # Rows a query of the table saw at the snapshot (newest version of each key,
    # not deleted). Absent in manifests written before it existed.
    live_rows: Count | None = None

    def schema(self, version: int | None = None) -> SchemaEntry:
        want = self.schema_version if version is None else version
        return next(s for s in self.schemas if s.version == want)


class ObjectEntry(_Strict, kw_only=True):
    """An object the backup needs: `size` as stored; an encoded object also has
    the `sha256` and `plain_size` of its content."""

    oid: Oid
    size: Count
    sha256: Oid | None = None
    plain_size: Count | None = None


class Totals(_Strict, kw_only=True):
    tables: Count
    files: Count
    bytes: Count
    objects: Count
    object_bytes: Count
    rows: Count  # stored row versions
    bytes_written: Count
    live_rows: Count | None = None  # the tables' live rows; absent in older manifests


class NamespaceRecord(_Strict, kw_only=True):
    created_at: Time
    options: dict[str, Scalar]
    server: ServerId | msgspec.UnsetType = msgspec.UNSET  # the writer's data directory; absent: older


class Scope(_Strict, kw_only=True):
    """What a backup is beyond one whole namespace (absent: exactly that). kind "tables":
    it holds exactly the named tables of its namespace (BACKUP TABLE). kind "databases" /
    "all": it is the member `<set_id>.<namespace>` of a backup set, taken at one instant
    with the other `namespaces` (BACKUP DATABASE a, b / BACKUP ALL), whole."""

    kind: Literal["tables", "databases", "all"]
    tables: Annotated[list[Name], Meta(max_length=65536)] = []
    set_id: BackupId | None = None
    namespaces: Annotated[list[Name], Meta(max_length=65536)] = []


class ArchiveRef(_Strict, kw_only=True):
    """The archive a backup is a base of, and the lsn its snapshot is exact to."""

    id: ArchiveId
    lsn: Lsn


class Header(_Strict, kw_only=True):
    """What anyone can read of a manifest (the public header of an encrypted one)."""

    format: Literal["cairn-backup"]
    format_version: Literal[1]
    features: list[Feature]
    backup_id: BackupId
    namespace: Name
    created_at: Time
    snapshot_at: Time
    label: Label | None
    encrypted: bool
    totals: Totals
    objects: list[ObjectEntry]
    key: KeyId | None = None
    manifest_sha256: Oid | None = None
    scope: Scope | None = None
    archive: ArchiveRef | None | msgspec.UnsetType = msgspec.UNSET  # null: no base; absent: older


class Manifest(Header, kw_only=True):
    """A whole backup: the header plus what restoring it needs."""

    namespace_record: NamespaceRecord
    max_seq: Seq
    tables: list[TableEntry]


PUBLIC = frozenset(Header.__struct_fields__)


# --- decoding -------------------------------------------------------------------


def load(doc: dict[str, Any]) -> Manifest:
    """A manifest document (as the repository returns it) as its type, checked; BackupInvalid
    names the first field that is wrong."""
    m = _convert(doc, Manifest)
    _check_header(m)
    _check_body(m)
    return m


def check_table(entry: dict[str, Any]) -> TableEntry:
    """One table entry, as its type, checked as `load` checks a manifest's (a table as
    archived DDL leaves it: storage/archive/replay.py)."""
    t = _convert(entry, TableEntry)
    _check_table("table", t)
    return t


def load_header(doc: dict[str, Any]) -> Header:
    """The public header of any manifest document (body fields are ignored)."""
    h = _convert({k: v for k, v in doc.items() if k in PUBLIC}, Header)
    _check_header(h)
    return h


def problem(doc: dict[str, Any]) -> str | None:
    """What is wrong with a manifest document, or None: the whole manifest, or only its
    header when it is an encrypted one read without its key."""
    try:
        if "tables" not in doc and doc.get("encrypted") is True:
            load_header(doc)
        else:
            load(doc)
    except BackupInvalid as exc:
        return exc.message
    return None


def to_doc(value: Struct) -> dict[str, Any]:
    """A Struct as the JSON-ready dict the repository writes."""
    doc: dict[str, Any] = msgspec.to_builtins(value)
    return doc


def _convert(doc: Any, kind: type[T]) -> T:
    if not isinstance(doc, dict):
        raise BackupInvalid("a manifest must be a JSON object")
    try:
        return msgspec.convert(doc, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise BackupInvalid(_where(str(exc))) from None


_AT = re.compile(r"^(?P<why>.*) - at `\$\.?(?P<path>[^`]*)`$", re.DOTALL)


def _where(message: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.tables[0].rows`" as
    "tables[0].rows: expected int, got str"."""
    found = _AT.match(message)
    why, path = (found["why"], found["path"]) if found else (message, "")
    why = why.replace("`", "")
    why = why[:1].lower() + why[1:]
    return f"{path}: {why}" if path else why


def _fail(path: str, why: str) -> BackupInvalid:
    return BackupInvalid(f"{path}: {why}")


def _time(path: str, text: str) -> None:
    try:  # as_of's form (timetext.instant); listings sort in UTC: year 1 at +14:00 is out of range
        when = timetext.instant(text)
        if when is not None and when.tzinfo is not None:
            when.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        why = "out of range in UTC" if isinstance(exc, OverflowError) else "not an ISO-8601 timestamp"
        raise _fail(path, f"{text!r} is {why}") from None
    if when is None or when.tzinfo is None:
        raise _fail(path, f"{text!r} " + ("has no time zone" if when is not None else "is not an ISO-8601 timestamp"))


def _check_header(h: Header) -> None:
    if h.namespace in RESERVED_NAMESPACES:
        raise _fail("namespace", f"'{h.namespace}' is reserved")
    _time("created_at", h.created_at)
    _time("snapshot_at", h.snapshot_at)
    if len(set(h.features)) != len(h.features):
        raise _fail("features", "a feature is named twice")
    if h.encrypted != (AES in h.features):
        raise _fail("encrypted", f"must be true exactly when features name {AES}")
    if h.key is not None and not h.encrypted:
        raise _fail("key", "only an encrypted backup names a key")
    seen: set[str] = set()
    for i, o in enumerate(h.objects):
        if o.oid in seen:
            raise _fail(f"objects[{i}]", f"object {o.oid} is listed twice")
        seen.add(o.oid)
        if (o.sha256 is None) != (o.plain_size is None):
            raise _fail(f"objects[{i}]", "an encoded object needs both sha256 and plain_size")
    t = h.totals
    if t.objects != len(h.objects):
        raise _fail("totals.objects", f"is {t.objects}, but {len(h.objects)} objects are listed")
    if t.object_bytes != sum(o.size for o in h.objects):
        raise _fail("totals.object_bytes", "is not the sum of the objects' sizes")
    if t.live_rows is not None and t.live_rows > t.rows:
        raise _fail("totals.live_rows", "is above totals.rows (a live row is a stored version)")
    if h.scope is not None:
        _check_scope(h)
    if isinstance(h.archive, ArchiveRef) and h.scope and h.scope.kind == "tables":
        raise _fail("archive", "a backup of some tables is no base of an archive")


def _check_scope(h: Header) -> None:
    s = h.scope
    assert s is not None
    if s.kind == "tables":
        if not s.tables:
            raise _fail("scope.tables", "a table backup names at least one table")
        if len(set(s.tables)) != len(s.tables):
            raise _fail("scope.tables", "a table is named twice")
        if s.set_id is not None or s.namespaces:
            raise _fail("scope", "a table backup is not a member of a set")
        return
    if s.tables:
        raise _fail("scope.tables", "a member of a set holds its whole namespace")
    if s.set_id is None:
        raise _fail("scope.set_id", "a member of a set names its set")
    if not s.namespaces or s.namespaces != sorted(set(s.namespaces)):
        raise _fail("scope.namespaces", "must list each namespace of the set once, sorted")
    if any(n in RESERVED_NAMESPACES for n in s.namespaces):
        raise _fail("scope.namespaces", "names a reserved namespace")
    if h.namespace not in s.namespaces:
        raise _fail("scope.namespaces", f"does not list the backup's namespace '{h.namespace}'")
    if h.backup_id != f"{s.set_id}.{h.namespace}":
        raise _fail("backup_id", f"a member of set '{s.set_id}' is '{s.set_id}.{h.namespace}'")


def _check_body(m: Manifest) -> None:
    objects = {o.oid: o for o in m.objects}
    names: set[str] = set()
    for ti, t in enumerate(m.tables):
        where = f"tables[{ti}]"
        if t.name in names:
            raise _fail(f"{where}.name", f"table '{t.name}' is listed twice")
        names.add(t.name)
        _check_table(where, t)
        for fi, f in enumerate(t.files):
            obj = objects.get(f.oid)
            content = (None if f.sha256 in (None, f.oid) else f.sha256, f.size)
            if obj is None or (obj.sha256, obj.plain_size if obj.sha256 else obj.size) != content:
                raise _fail(f"{where}.files[{fi}]",
                            f"object {f.oid} is not listed in objects with its content and size")
        if m.max_seq < t.max_seq:
            raise _fail("max_seq", f"is below {where}.max_seq")
    if m.scope is not None and m.scope.kind == "tables" and sorted(m.scope.tables) != sorted(names):
        raise _fail("scope.tables", "must name exactly the tables the backup holds")
    files = [f for t in m.tables for f in t.files]
    used = {f.oid for f in files}
    for i, o in enumerate(m.objects):
        if o.oid not in used:  # VERIFY would check it and RESTORE never read it: refuse both
            raise _fail(f"objects[{i}]", f"object {o.oid} is used by no file")
    totals = m.totals
    for field, value in (("tables", len(m.tables)), ("files", len(files)),
                         ("bytes", sum(f.size for f in files)),
                         ("rows", sum(t.rows for t in m.tables))):
        if getattr(totals, field) != value:
            raise _fail(f"totals.{field}", f"is {getattr(totals, field)}, the tables say {value}")
    live = [t.live_rows for t in m.tables]
    if totals.live_rows is None:
        if any(v is not None for v in live):
            raise _fail("totals.live_rows", "is missing, but tables give live_rows")
    elif None in live or totals.live_rows != sum(v for v in live if v is not None):
        raise _fail("totals.live_rows", "is not the sum of every table's live_rows")
    _time("namespace_record.created_at", m.namespace_record.created_at)
    if m.namespace_record.options:
        raise _fail("namespace_record.options", "namespaces take no options")


def _check_table(where: str, t: TableEntry) -> None:
    _time(f"{where}.created_at", t.created_at)
    try:
        opts = check_options(t.table_type, dict(t.options))
    except InvalidArgument as exc:
        raise _fail(f"{where}.options", exc.message) from None
    if opts != t.options or any(abs(v) > INT64_MAX for v in opts.values()):
        raise _fail(f"{where}.options", "an option has a value of the wrong kind")
    versions: set[int] = set()
    for si, s in enumerate(t.schemas):
        if s.version in versions:
            raise _fail(f"{where}.schemas[{si}].version", f"version {s.version} is listed twice")
        versions.add(s.version)
        _time(f"{where}.schemas[{si}].created_at", s.created_at)
        _check_columns(f"{where}.schemas[{si}]", t, s)
    if t.schema_version not in versions or max(versions) != t.schema_version:
        raise _fail(f"{where}.schema_version", f"{t.schema_version} is not the newest schema")
    current = {c.name: c for c in t.schema().columns}
    # Files of version v are read with the current columns whose `since` <= v, so
    # each of those must be a column of every such version, of the same type.
    for s in t.schemas:
        have = {c.name: (c.type, c.params) for c in s.columns}
        for c in current.values():
            if c.since <= s.version and have.get(c.name) != (c.type, c.params):
                raise _fail(f"{where}.schemas", f"column '{c.name}' (since version {c.since}) "
                                                f"is not in schema version {s.version} as {c.type}")
    if len(set(t.primary_key)) != len(t.primary_key):
        raise _fail(f"{where}.primary_key", "a column is named twice")
    for i, k in enumerate(t.primary_key):
        col = current.get(k)
        if col is None:
            raise _fail(f"{where}.primary_key[{i}]", f"column '{k}' is not in the current schema")
        if not col.primary_key or col.type == "JSON":
            raise _fail(f"{where}.primary_key[{i}]", f"column '{k}' cannot be a key column")
    if {c.name for c in current.values() if c.primary_key} != set(t.primary_key):
        raise _fail(f"{where}.primary_key", "does not match the key columns of the schema")
    if t.table_type == "stream" and (t.files or t.rows):
        raise _fail(f"{where}.files", "a STREAM table's rows are never backed up")
    rows = max_seq = 0
    seen: set[str] = set()
    for fi, f in enumerate(t.files):
        fw = f"{where}.files[{fi}]"
        if f.content_sha256 in seen:
            raise _fail(fw, f"file {f.content_sha256} is listed twice")
        seen.add(f.content_sha256)
        if f.schema_version not in versions:
            raise _fail(f"{fw}.schema_version", f"version {f.schema_version} is not a schema of the table")
        if (f.user_id is not None) != (t.table_type == "user"):
            raise _fail(f"{fw}.user_id", "USER tables' files name their user, and only theirs")
        if f.min_seq > f.max_seq:
            raise _fail(f"{fw}.min_seq", "is above max_seq")
        _check_range(fw, f, t)
        rows += f.rows
        max_seq = max(max_seq, f.max_seq)
    if t.rows != rows:
        raise _fail(f"{where}.rows", f"is {t.rows}, its files hold {rows}")
    if t.live_rows is not None and t.live_rows > t.rows:
        raise _fail(f"{where}.live_rows", "is above rows (a live row is a stored version)")
    if t.max_seq != max_seq:
        raise _fail(f"{where}.max_seq", f"is {t.max_seq}, its files reach {max_seq}")


def _check_columns(where: str, t: TableEntry, s: SchemaEntry) -> None:
    seen: set[str] = set()
    for ci, c in enumerate(s.columns):
        cw = f"{where}.columns[{ci}]"
        if c.name in seen:
            raise _fail(f"{cw}.name", f"column '{c.name}' is listed twice")
        seen.add(c.name)
        if c.system:
            if c.name not in SYSTEM_COLUMNS or msgspec.to_builtins(c) != system_column(c.name):
                raise _fail(cw, f"'{c.name}' is not one of Cairn's own columns")
            continue
        if c.name in RESERVED_COLUMNS or not re.match(NAME_PATTERN, c.name):
            raise _fail(f"{cw}.name", f"'{c.name}' is not a valid column name")
        if c.type not in TYPE_NAMES:
            raise _fail(f"{cw}.type", f"unknown column type {c.type!r}")
        try:
            typ, params = canonical_type(c.type, tuple(c.params), c.name)
        except InvalidArgument as exc:
            raise _fail(f"{cw}.params", exc.message) from None
        if (typ, params) != (c.type, c.params):
            raise _fail(f"{cw}.params", f"{c.type}{c.params} is not a canonical type")
        if c.since > s.version:
            raise _fail(f"{cw}.since", f"is after the schema's version {s.version}")
        if c.primary_key and not c.not_null:
            raise _fail(f"{cw}.not_null", "a key column is NOT NULL")
        if not c.has_default:
            if c.default is not None:
                raise _fail(f"{cw}.default", "a column without a default has none")
            continue
        try:
            value = stored_value({**msgspec.to_builtins(c), "not_null": False}, c.default)
        except InvalidArgument as exc:
            raise _fail(f"{cw}.default", exc.message) from None
        if value is None and c.not_null:
            raise _fail(f"{cw}.default", "NULL default for a NOT NULL column")
    if not any(not c.system for c in s.columns):
        raise _fail(f"{where}.columns", "a table needs at least one column of its own")
    needed = ("_updated", "_deleted") if t.table_type != "stream" else ()
    for name in needed:
        if name not in seen:
            raise _fail(f"{where}.columns", f"a {t.table_type.upper()} table has column '{name}'")


def _check_range(where: str, f: FileEntry, t: TableEntry) -> None:
    columns = {c.name: c for c in t.schema(f.schema_version).columns}
    for name, (low, high) in f.key_range.items():
        col = columns.get(name)
        if name not in t.primary_key or col is None:
            raise _fail(f"{where}.key_range", f"'{name}' is not a key column")
        if col.type == "TEXT":
            ok = isinstance(low, str) and isinstance(high, str)
        elif col.type in ("SMALLINT", "INT", "BIGINT"):
            bound = {"SMALLINT": 2**15, "INT": 2**31, "BIGINT": 2**63}[col.type]
            ok = all(isinstance(v, int) and -bound <= v < bound for v in (low, high))
        else:
            ok = False
        if not ok or low > high:  # type: ignore[operator]
            raise _fail(f"{where}.key_range.{name}", "is not a range of the column's type")
