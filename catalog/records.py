"""Typed catalog records. Each record class names its column family (`FAMILY`)
and derives its key from its fields, so callers never build keys by hand.

Records are stored as JSON: small, readable in a debugger, and stable across
versions (unknown fields from a newer version are ignored on load)."""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import msgspec

SEP = "\x00"


def utcnow() -> str:
    """An ISO-8601 UTC timestamp with milliseconds and a `Z`, as the contract shows."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Record:
    FAMILY: ClassVar[str] = ""

    def key(self) -> str:
        raise NotImplementedError

    def dumps(self) -> bytes:
        # The fields one level deep: json.dumps walks the rest itself, and
        # `dataclasses.asdict` deep-copied every value first (47 µs for a
        # backup's job row against 9; a BACKUP writes its row several times,
        # holding the GIL beside the event loop). A dataclass met inside a
        # value is written as asdict would have (`_default`).
        cls = type(self)
        names = _NAMES.get(cls)
        if names is None:
            names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
        return json.dumps({n: getattr(self, n) for n in names}, separators=(",", ":"),
                          default=_default).encode()

    @classmethod
    def loads(cls: type[R], raw: bytes) -> R:
        # msgspec decodes a record in a quarter of json.loads' time; a scan of
        # the jobs family (up to [jobs] history_max_count records) holds the GIL
        # for all of it. `dumps` may write NaN or Infinity (json.dumps allows
        # them), which msgspec refuses: those records take json.loads.
        try:
            data = _DECODE(raw)
        except msgspec.DecodeError:
            data = json.loads(raw)
        names = _FIELDS.get(cls)
        if names is None:
            names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
        return cls(**{k: v for k, v in data.items() if k in names})


R = TypeVar("R", bound=Record)
_NAMES: dict[type[Record], tuple[str, ...]] = {}
_DECODE = msgspec.json.Decoder().decode
_FIELDS: dict[type[Record], frozenset[str]] = {}


S = TypeVar("S", bound=msgspec.Struct)


def fields_decoder(kind: type[Record], shape: type[S]) -> Callable[[bytes], S]:
    """A decoder of `kind`'s stored records into `shape`, a msgspec Struct of
    some of its fields: only those are decoded (~1 µs a record; a whole one
    took 7-13, and a scan of every job or backup record holds the GIL for all
    of them). A record msgspec refuses (a NaN or Infinity, which json.loads
    reads, or a field of an unexpected type) is read as `kind.loads` reads it."""
    decode = msgspec.json.Decoder(shape).decode
    names = shape.__struct_fields__

    def read(raw: bytes) -> S:
        try:
            return decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            whole = kind.loads(raw)
            return shape(*(getattr(whole, n) for n in names))

    return read


def _default(value: Any) -> Any:
    """What `Record.dumps` writes for a value JSON has no form of."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


@dataclass
class Namespace(Record):
    """A namespace. `restored_from`: when it was made by a RESTORE of another
    server's backup, `server`, the server that wrote it (its data directory's
    id; "" for a manifest older than that field), `at`, when the restore
    installed (since 2026-12-07), `backup`, the backup restored, `upto`, the
    newest snapshot of that server's backups its history holds, and
    `earlier`, the restores before it (later that day; a restore of this
    server's own backup records them too: storage/backup/restored.py): that
    server's backups of it are its history too, to restore, for a time the
    one restored then (never its archives' windows: storage/backup/origin.py).
    `restored_tables`: the RESTORE TABLEs into it (each `table`, `at`, `backup`,
    `server`, `from`; the last 16, storage/backup/restored_tables.py), by which
    a time after one is judged for that table (since 2026-12-07; None: none)."""

    FAMILY: ClassVar[str] = "namespaces"
    name: str
    created_at: str = field(default_factory=utcnow)
    options: dict[str, Any] = field(default_factory=dict)
    restored_from: dict[str, str] | None = None
    restored_tables: list[dict[str, str]] | None = None

    def key(self) -> str:
        return self.name


@dataclass
class Table(Record):
    """A table's identity. `uid` never changes and never repeats: files, buffers
    and schemas hang off it, so a table dropped and re-created (or restored under
    `replace`) never mixes with its predecessor."""

    FAMILY: ClassVar[str] = "tables"
    namespace: str
    name: str
    uid: str
    table_type: str  # shared | user | stream
    schema_version: int = 1
    primary_key: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=utcnow)

    def key(self) -> str:
        return table_key(self.namespace, self.name)


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def table_key(namespace: str, name: str) -> str:
    return f"{namespace}{SEP}{name}"


@dataclass
class TableSchema(Record):
    """One schema version of a table. `columns` are dicts: name, type, params,
    not_null, primary_key, has_default, default (system columns included)."""

    FAMILY: ClassVar[str] = "table_schemas"
    table_uid: str
    version: int
    namespace: str
    table_name: str
    columns: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=utcnow)

    def key(self) -> str:
        return schema_key(self.table_uid, self.version)


def schema_key(table_uid: str, version: int) -> str:
    return f"{table_uid}{SEP}{version:010d}"


@dataclass
class DataFile(Record):
    """An immutable Parquet file of a table. `path` is relative to the data dir.
    `sha256` is computed when the file is written, so a backup need not reread
    the file to know its content address."""

    FAMILY: ClassVar[str] = "files"
    table_uid: str
    file_id: str
    path: str
    rows: int
    bytes: int
    sha256: str
    schema_version: int
    user_id: str | None = None
    min_seq: int = 0
    max_seq: int = 0
    created_at: str = field(default_factory=utcnow)
    # {primary-key column: [min, max]} of the file's rows, for the columns whose
    # bounds are exact in JSON (integers, short TEXT); none for older or restored
    # files. Lets an INSERT skip reading files its new keys cannot be in.
    key_range: dict[str, list[Any]] = field(default_factory=dict)

    def key(self) -> str:
        return f"{self.table_uid}{SEP}{self.file_id}"


JOB_TEXT_MAX = 4096  # characters of a job's statement or error_message kept


def clip(text: str | None, limit: int = JOB_TEXT_MAX) -> str | None:
    """`text` cut to `limit` characters, the cut marked with how long it was."""
    if text is None or len(text) <= limit:
        return text
    marker = f"… [cut: {len(text)} characters in all]"
    return text[:limit - len(marker)] + marker


@dataclass
class Job(Record):
    """A job's row. Its statement and error_message are bounded (`clip`) when it
    is made and whenever it is stored: a 9 MiB comment in a FLUSH once made every
    read of system.jobs carry it, for every client."""

    FAMILY: ClassVar[str] = "jobs"
    job_id: str
    job_type: str
    status: str = "queued"
    namespace: str | None = None
    target: str | None = None
    backup_id: str | None = None
    statement: str | None = None
    user_id: str | None = None
    created_at: str = field(default_factory=utcnow)
    started_at: str | None = None
    finished_at: str | None = None
    fraction_completed: float = 0.0
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    rows: int = 0
    result: Any = None
    error_message: str | None = None
    node_id: str | None = None
    # What the running job waits for now ("the write lock of table app.t",
    # storage/lockset.py), else None.
    waiting_for: str | None = None
    # Internal: what start-up cleanup needs to undo a half-done job (never shown).
    cleanup: dict[str, Any] = field(default_factory=dict)
    # Internal: when the server last wrote the row of the running job (a progress
    # update, a status change); a job a dead process left ends there (never shown).
    alive_at: str | None = None

    def __post_init__(self) -> None:
        self.statement, self.error_message = clip(self.statement), clip(self.error_message)

    def key(self) -> str:
        return self.job_id

    def dumps(self) -> bytes:
        self.statement, self.error_message = clip(self.statement), clip(self.error_message)
        return super().dumps()


@dataclass
class Backup(Record):
    """The server's own catalog of backups it made or restored from (`system.backups`).
    The target's manifests are the truth; this is an index of them."""

    FAMILY: ClassVar[str] = "backups"
    backup_id: str
    namespace: str
    target: str
    created_at: str
    snapshot_at: str
    tables: int = 0
    rows: int | None = 0  # live rows at the snapshot; None when the manifest does not say
    files: int = 0
    bytes: int = 0
    bytes_written: int = 0
    label: str | None = None
    encrypted: bool = False
    job_id: str | None = None
    row_versions: int = 0  # stored row versions
    scope: str = "database"  # what it holds: 'database' or 'tables: t, u'
    # Its manifest's `namespace_record` (whose backup: storage/backup/origin.py):
    # the data directory that wrote it and its namespace's created_at; None when
    # not known (a record older than these fields, not in the manifest, or an
    # encrypted one attached without its passphrase).
    server: str | None = None
    namespace_created_at: str | None = None

    def key(self) -> str:
        return self.backup_id

    @classmethod
    def loads(cls, raw: builtins.bytes) -> Backup:
        # A record written before row_versions existed counted versions as `rows`.
        data = json.loads(raw)
        if "row_versions" not in data:
            data["row_versions"], data["rows"] = data.get("rows") or 0, None
        return super().loads(json.dumps(data).encode())


@dataclass
class Schedule(Record):
    FAMILY: ClassVar[str] = "schedules"
    name: str
    namespace: str
    target: str
    every: str | None  # an interval like '1h', or None for a cron schedule
    every_seconds: int
    keep_last: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=utcnow)
    next_run_at: str | None = None
    last_job_id: str | None = None
    last_status: str | None = None
    cron: str | None = None  # a cron expression (UTC), or None for an interval schedule

    def key(self) -> str:
        return self.name


@dataclass
class Archive(Record):
    """Continuous archiving of one namespace (`system.archives`). `secret` (the
    encryption passphrase, so archiving resumes after a restart) is never shown;
    the position fields say where the target ends as far as this server knows."""

    FAMILY: ClassVar[str] = "archives"
    namespace: str
    target: str  # canonical uri
    target_text: str  # as the statement gave it (resolved again at start-up)
    archive_id: str
    status: str = "running"  # running | stopped | failed
    interval_ms: int = 1000
    compression: str = "zstd"
    secret: str | None = None
    job_id: str | None = None
    base_backup_id: str | None = None
    base_lsn: int | None = None  # the base's cut: segments continue from here
    base_us: int | None = None
    shipped_lsn: int = 0  # newest lsn in the target (0: none yet)
    shipped_us: int | None = None  # every change up to this time is in the target
    segments: int = 0
    bytes: int = 0
    last_error: str | None = None
    started_at: str = field(default_factory=utcnow)
    stopped_at: str | None = None
    started_by: str | None = None  # who ran START ARCHIVING: the user of its base backups

    def key(self) -> str:
        return self.namespace


@dataclass
class Meta(Record):
    """Small server-wide values: the row sequence high-water mark, the node id."""

    FAMILY: ClassVar[str] = "meta"
    name: str
    value: Any = None

    def key(self) -> str:
        return self.name


RECORD_TYPES: tuple[type[Record], ...] = (
    Namespace,
    Table,
    TableSchema,
    DataFile,
    Job,
    Backup,
    Schedule,
    Archive,
    Meta,
)
