"""The one typed decoder for what Cairn reads back from a target, besides the
manifest's own schema (manifest.py): `config.json`, key files, locks, prune
markers, a manifest's body descriptor and archive members.

Everything on a target is hostile input: anyone who can write there can put
anything in these files. Each record is a strict msgspec Struct: exact JSON
types (no coercion of "1" to 1, no bool for an int), every integer within the
range the code relies on, known enumerations, no missing and no unknown keys.
A record that does not decode is damage, `BackupInvalid` naming the file and
the field (`$.pid`), never a guess and never a 500."""

from __future__ import annotations

import tarfile
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from catalog.errors import BackupInvalid

from ..jsondepth import containers, nesting_depth

T = TypeVar("T")

MAX_JSON = 16 << 20  # no record of these kinds is anywhere near this size
MAX_LOCK_OIDS = 1 << 22  # four million object names in one running backup
MAX_BODY = 64 << 20  # a manifest body, decompressed: as much as a manifest file (atomic.SMALL_MAX)

# JSON objects and arrays (the bytes `{` and `[` outside strings) a manifest may
# hold per byte: each costs a reader some 70 bytes of Python objects, so a file of
# `[{},{},…]` would cost 25 times its size and seconds of a held GIL before any
# check. BACKUP writes one per 50 to 130 bytes (a column, an object, a file
# entry); the densest it can write, a 64-column key of two-letter names and
# one-digit bounds in every file's key_range, is one per 14.7. (docs/backup-format.md)
JSON_DENSITY = 8
JSON_DENSITY_SLACK = 1024

# How deep a manifest (or its body, or any record here) may nest JSON objects
# and arrays. BACKUP writes 8 at most (the manifest, `tables`, a table,
# `schemas`, a schema, `columns`, a column, its `params`). Every reader
# recurses: json.loads, the canonical encoding the checksum is checked on,
# msgspec; a manifest nested ~1000 deep parsed and then overran Python's
# recursion limit in that encoding (a 500). Checked first, without recursion.
# (docs/backup-format.md)
MAX_JSON_DEPTH = 64

Hex64 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
Hex32 = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}\Z")]
BackupId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")]
Timestamp = Annotated[
    str,
    Meta(
        pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]"
        r":[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?\Z"
    ),
]
Host = Annotated[str, Meta(min_length=1, max_length=255)]
Pid = Annotated[int, Meta(ge=1, le=(1 << 31) - 1)]
Feature = Annotated[str, Meta(min_length=1, max_length=64)]


class Record(Struct, forbid_unknown_fields=True, frozen=True):
    """Base of every record: unknown keys are damage."""


class Config(Record):  # type: ignore[misc]
    """`config.json`. `format_version` and `features` are checked against what
    this Cairn knows by config.py, so an unknown version gets its own message."""

    format: Literal["cairn-backup"]
    format_version: Annotated[int, Meta(ge=0, le=1 << 31)]
    features: Annotated[list[Feature], Meta(max_length=64)]
    created_at: Timestamp


class Preamble(Struct, frozen=True):
    """What any version of `config.json` starts with: read first, so that another
    format or a newer version gets its own message rather than a field error."""

    format: str
    format_version: Annotated[int, Meta(ge=0, le=1 << 31)]
    features: Annotated[list[Feature], Meta(max_length=64)] = []


class KeyFile(Record):  # type: ignore[misc]
    """`keys/<key_id>.json`: scrypt parameters within what a reader will run
    (n is also a power of two: crypto.py)."""

    format: Literal["cairn-backup-key"]
    cipher: Literal["aes-256-gcm"]
    kdf: Literal["scrypt"]
    n: Annotated[int, Meta(ge=2, le=1 << 20)]
    r: Annotated[int, Meta(ge=1, le=32)]
    p: Annotated[int, Meta(ge=1, le=16)]
    salt: Hex32
    key_check: Hex64
    created_at: Timestamp
    file_sha256: Hex64 | None = None  # over the other fields; absent in early key files


class Lock(Record):  # type: ignore[misc]
    """`locks/<backup_id>.json`: the objects a running backup relies on."""

    backup_id: BackupId
    created_at: Timestamp
    host: Host
    pid: Pid
    oids: Annotated[list[Hex64], Meta(max_length=MAX_LOCK_OIDS)]


class PruneMarker(Record):  # type: ignore[misc]
    """`prunes/<token>.json`: a prune is running."""

    host: Host
    pid: Pid
    started_at: Timestamp


class Body(Record):  # type: ignore[misc]
    """A manifest's `body` descriptor (see envelope.py)."""

    codec: Literal["zstd", "aes-256-gcm", "zstd+aes-256-gcm"]
    data: str
    plain_size: Annotated[int, Meta(ge=0, le=MAX_BODY)]


class Member(Record):  # type: ignore[misc]
    """One archive member as tarfile reports it: a regular file or a directory
    entry, of a size that fits a signed 64-bit integer."""

    name: Annotated[str, Meta(min_length=1, max_length=512)]
    size: Annotated[int, Meta(ge=0, le=(1 << 63) - 1)]
    kind: Literal["file", "dir"]


def decode(data: bytes, kind: type[T], what: str) -> T:
    """Decode JSON `data` strictly as `kind`; BackupInvalid names `what` and the field."""
    if len(data) > MAX_JSON:
        raise BackupInvalid(f"{what} is corrupt: {len(data)} bytes, more than any such file holds")
    deep = deep_problem(data)  # msgspec skips an unknown field's value recursively
    if deep:
        raise BackupInvalid(f"{what} is corrupt: {deep}")
    try:
        return msgspec.json.decode(data, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise BackupInvalid(f"{what} is corrupt: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BackupInvalid(f"{what} is corrupt: not valid JSON ({exc})") from None


def dense_problem(data: bytes | bytearray) -> str | None:
    """Why `data` may not be parsed as a manifest: more objects and arrays than
    BACKUP ever writes in that many bytes (JSON_DENSITY). Counted at C speed,
    before the parse would build them."""
    limit = len(data) // JSON_DENSITY + JSON_DENSITY_SLACK
    if data.count(b"{") + data.count(b"[") <= limit:  # every manifest BACKUP writes but a few
        return None
    # Brackets in strings build nothing: a label, a DEFAULT of `[[0,0],…]`, a
    # TEXT key's bounds of `{…` were counted, and BACKUP wrote manifests that
    # SHOW BACKUPS, VERIFY and RESTORE then called corrupt.
    count = containers(data)
    if count > limit:
        return f"too many JSON objects and arrays for its size ({count} in {len(data)} bytes)"
    return None


def deep_problem(data: bytes | bytearray) -> str | None:
    """Why `data` may not be parsed as a manifest: it nests JSON objects and
    arrays deeper than MAX_JSON_DEPTH."""
    if data.count(b"{") + data.count(b"[") <= MAX_JSON_DEPTH:  # most headers stop here
        return None
    depth = nesting_depth(data)
    if depth > MAX_JSON_DEPTH:
        return f"it nests JSON objects and arrays {depth} deep, more than {MAX_JSON_DEPTH}"
    return None


def convert(value: Any, kind: type[T], what: str) -> T:
    """`decode` for a value already parsed (a field of another document)."""
    try:
        return msgspec.convert(value, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise BackupInvalid(f"{what} is corrupt: {exc}") from None


def encode(record: Record) -> bytes:
    return msgspec.json.encode(record)


def member(info: tarfile.TarInfo, archive: str) -> Member:
    """An archive member, typed; links, devices, FIFOs and sparse files are refused."""
    if info.isdir():
        kind = "dir"
    elif info.isreg() and not info.issparse():
        kind = "file"
    else:
        raise BackupInvalid(
            f"backup archive '{archive}' has member {info.name!r} that is not a regular file"
        )
    return convert(
        {"name": info.name, "size": info.size, "kind": kind},
        Member,
        f"backup archive '{archive}' member {info.name[:200]!r}",
    )
