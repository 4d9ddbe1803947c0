"""The segment: one file of archived changes, and every check made reading it back.

    archives/<namespace>/<archive_id>/<after_lsn>-<last_lsn>-<after_us>-<through_us>.seg

(20, 20, 17 and 17 digits). A segment holds every change of the namespace with
after_lsn < lsn <= last_lsn, which are exactly those committed in the time
(after_us, through_us]; an empty segment (after_lsn = last_lsn) says nothing
changed in its time. The file is one line of canonical JSON (the header), then
the body, compressed (zstd) and/or encrypted (AES-256-GCM, the repository's
key) as its `codec` says: in format_version 2 (written now) the DDL changes and
the row changes grouped into per-table Arrow blocks (blocks.py); in
format_version 1 (still read) every change as msgpack `[lsn, at_us, kind,
table, data]`. A segment read back is
hostile input: the header is decoded into a typed Struct, range-checked,
checksummed and compared with the file name; the body must decode to exactly
`plain_size` bytes with `plain_sha256`, and its changes must be in order, inside
the header's ranges, and of known kinds."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Literal

import msgspec

from catalog.errors import BackupInvalid
from storage.backup.codec import RAW, ZSTD, Form, decode_bytes, encode_bytes
from storage.backup.crypto import Keys, NotEncrypted

from .blocks import TOO_DEEP, Entry, decode_body, encode_body
from .changes import KINDS, Change
from .steps import pace, step

FORMAT = "cairn-archive-segment"
FORMAT_VERSION = 2
READS = (1, 2)  # the format versions this Cairn reads
CODECS = ("none", "zstd", "aes-256-gcm", "zstd+aes-256-gcm")
MAX_LSN = (1 << 63) - 1
MAX_US = 10**17 - 1  # what 17 digits hold (year ~5138)
MAX_HEADER = 64 << 10
MAX_BODY = 1 << 30
MAX_CHANGES = 10_000_000
SUFFIX = ".seg"

_NAME = re.compile(r"^([0-9]{20})-([0-9]{20})-([0-9]{17})-([0-9]{17})\.seg\Z")
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,63}\Z")
ARCHIVE_ID = re.compile(r"^ar-[0-9a-z]{20}\Z")
NAMESPACE = re.compile(r"^[a-z_][a-z0-9_]{0,63}\Z")

_changes_decoder = msgspec.msgpack.Decoder(list[Change])
_encoder = msgspec.msgpack.Encoder()


class Header(msgspec.Struct, forbid_unknown_fields=True):
    format: Literal["cairn-archive-segment"]
    format_version: int
    namespace: str
    archive_id: str
    after_lsn: int
    last_lsn: int
    after_us: int
    through_us: int
    count: int
    codec: Literal["none", "zstd", "aes-256-gcm", "zstd+aes-256-gcm"]
    key: str | None
    body_size: int
    plain_size: int
    plain_sha256: str
    header_sha256: str
    body_sha256: str | None = None  # format 2: sha256 of the stored body (required)


@dataclass(frozen=True, order=True)
class SegmentName:
    """What a segment's file name says (checked against its header when read)."""

    after_lsn: int
    last_lsn: int
    after_us: int
    through_us: int

    @property
    def file(self) -> str:
        return (f"{self.after_lsn:020d}-{self.last_lsn:020d}-"
                f"{self.after_us:017d}-{self.through_us:017d}{SUFFIX}")

    @property
    def empty(self) -> bool:
        return self.after_lsn == self.last_lsn


def parse_name(name: str) -> SegmentName | None:
    """A segment file name, or None if it is not one (or its ranges are impossible)."""
    m = _NAME.match(name)
    if m is None:
        return None
    a, b, c, d = (int(g) for g in m.groups())
    if not (a <= b <= MAX_LSN and c <= d <= MAX_US):
        return None
    return SegmentName(a, b, c, d)


def binding(namespace: str, archive_id: str, name: SegmentName) -> bytes:
    """What an encrypted body is bound to: a body moved to another name fails."""
    return hashlib.sha256(
        f"cairn-archive segment {namespace}/{archive_id}/{name.file}".encode()
    ).digest()


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def encode(namespace: str, archive_id: str, name: SegmentName, changes: list[Change],
           compress: bool, keys: Keys | None, version: int = FORMAT_VERSION) -> bytes:
    """The bytes of a segment holding `changes` (already in lsn order).
    `version` 1 writes the old body (tests keep reading it)."""
    with step("blocks"):
        plain = encode_body(changes) if version == 2 else _encoder.encode(changes)
    pace()
    return seal(namespace, archive_id, name, plain, len(changes), compress, keys, version)


def empty_body(version: int = FORMAT_VERSION) -> bytes:
    """The body of a segment with no changes."""
    return encode_body([]) if version == 2 else _encoder.encode([])


def seal(namespace: str, archive_id: str, name: SegmentName, plain: bytes, count: int,
         compress: bool, keys: Keys | None, version: int = FORMAT_VERSION) -> bytes:
    """The bytes of a segment whose body, before compression and encryption, is
    `plain` (encode_body of its `count` changes, built here or by the archive
    helper process): the header, then the stored body."""
    codec = "+".join((["zstd"] if compress else []) + (["aes-256-gcm"] if keys else [])) or "none"
    if codec == "none":
        body = plain
    else:
        body = encode_bytes(plain, Form("", ZSTD if compress else RAW, keys),
                            binding(namespace, archive_id, name))
        pace()
    header = {
        "format": FORMAT, "format_version": version, "namespace": namespace,
        "archive_id": archive_id, "after_lsn": name.after_lsn, "last_lsn": name.last_lsn,
        "after_us": name.after_us, "through_us": name.through_us, "count": count,
        "codec": codec, "key": keys.key_id if keys is not None else None,
        "body_size": len(body), "plain_size": len(plain),
        "plain_sha256": hashlib.sha256(plain).hexdigest(),
    }
    if version >= 2:
        header["body_sha256"] = hashlib.sha256(body).hexdigest()
    header["header_sha256"] = hashlib.sha256(_canonical(header)).hexdigest()
    return _canonical(header) + b"\n" + body


def read_header(data: bytes, what: str) -> tuple[Header, bytes]:
    """The checked header of a segment's bytes, and its stored body."""
    end = data.find(b"\n", 0, MAX_HEADER)
    if end < 0:
        raise BackupInvalid(f"{what} is corrupt: no header line")
    raw = data[:end]
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BackupInvalid(f"{what} is corrupt: its header is not JSON") from None
    if not isinstance(doc, dict):
        raise BackupInvalid(f"{what} is corrupt: its header is not a JSON object")
    version = doc.get("format_version")
    if type(version) is not int or version not in READS:
        raise BackupInvalid(f"{what} has unknown format_version {version!r}; "
                            f"this Cairn reads format_version 1 and 2")
    try:
        header = msgspec.convert(doc, Header, strict=True)
    except msgspec.ValidationError as exc:
        raise BackupInvalid(f"{what} is corrupt: {exc}") from None
    body_doc = {k: v for k, v in doc.items() if k != "header_sha256"}
    try:
        body_bytes, canonical = _canonical(body_doc), _canonical(doc)
    except (UnicodeEncodeError, ValueError):  # a lone surrogate, NaN: no canonical form
        raise BackupInvalid(f"{what} is corrupt: its header holds a lone surrogate escape "
                            "or a number JSON has no form for") from None
    if hashlib.sha256(body_bytes).hexdigest() != header.header_sha256:
        raise BackupInvalid(f"{what} is corrupt: header_sha256 mismatch")
    if canonical != raw:
        raise BackupInvalid(f"{what} is corrupt: header differs from the canonical form")
    return header, data[end + 1:]


def decode(data: bytes, namespace: str, archive_id: str, name: SegmentName,
           open_key: object = None, require_key: bool = False) -> tuple[Header, list[Entry]]:
    """Check and decode a segment read from `…/<namespace>/<archive_id>/<name>`:
    its changes in commit order, row changes of format_version 2 as blocks
    (blocks.Rows). `open_key(key_id)` gives the Keys of an encrypted segment.
    `require_key` (an encryption_passphrase was given): a segment that is not
    encrypted is refused, since anyone can write one without the key."""
    what = f"archived segment {namespace}/{archive_id}/{name.file}"
    h, body = read_header(data, what)
    problem = _header_problem(h, namespace, archive_id, name, len(body))
    if problem:
        raise BackupInvalid(f"{what} is corrupt: {problem}")
    if require_key and "aes-256-gcm" not in h.codec:
        raise NotEncrypted(
            f"{what} is not encrypted, but an encryption_passphrase was given: a segment "
            "anyone could have written without the key is not read as part of an encrypted "
            "archive (without the passphrase, a plain archive reads as such)")
    if h.body_sha256 is not None and hashlib.sha256(body).hexdigest() != h.body_sha256:
        raise BackupInvalid(f"{what} is corrupt: body_sha256 mismatch")
    plain: bytes | bytearray
    if h.codec == "none":
        plain = body
    else:
        keys = None
        if "aes-256-gcm" in h.codec:
            if h.key is None or not callable(open_key):
                raise BackupInvalid(f"{what} is encrypted: give its encryption_passphrase")
            keys = open_key(h.key)
        form = Form("", ZSTD if h.codec.startswith("zstd") else RAW, keys)
        plain = decode_bytes(body, form, what, h.plain_size, binding(namespace, archive_id, name))
    if len(plain) != h.plain_size or hashlib.sha256(plain).hexdigest() != h.plain_sha256:
        raise BackupInvalid(f"{what} is corrupt: body sha256 or size mismatch")
    if h.format_version == 2:
        entries = decode_body(plain, h.after_lsn, h.last_lsn, h.after_us, h.through_us, h.count)
        if isinstance(entries, str):
            raise BackupInvalid(f"{what} is corrupt: {entries}")
        return h, entries
    try:
        changes = _changes_decoder.decode(plain)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BackupInvalid(f"{what} is corrupt: {exc}") from None
    except RecursionError:  # an extra field's value, skipped by recursing
        raise BackupInvalid(f"{what} is corrupt: {TOO_DEEP}") from None
    problem = _changes_problem(h, changes)
    if problem:
        raise BackupInvalid(f"{what} is corrupt: {problem}")
    return h, list(changes)


def _header_problem(h: Header, namespace: str, archive_id: str, name: SegmentName,
                    body_size: int) -> str | None:
    if h.format != FORMAT:
        return "not a segment"
    if h.namespace != namespace or h.archive_id != archive_id:
        return "it names another namespace or archive"
    if (h.after_lsn, h.last_lsn, h.after_us, h.through_us) != (
            name.after_lsn, name.last_lsn, name.after_us, name.through_us):
        return "its header and its file name disagree"
    if not 0 <= h.count <= MAX_CHANGES or (h.count == 0) != (h.after_lsn == h.last_lsn):
        return f"bad change count {h.count}"
    if h.count > h.last_lsn - h.after_lsn:
        return f"bad change count {h.count}"
    if (h.format_version >= 2) != (h.body_sha256 is not None) or (
            h.body_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", h.body_sha256)):
        return "body_sha256 missing, bad, or in a format_version 1 header"
    if h.body_size != body_size:
        return f"body is {body_size} bytes, header says {h.body_size}"
    if not 0 <= h.plain_size <= MAX_BODY or not re.fullmatch(r"[0-9a-f]{64}", h.plain_sha256):
        return "bad body size or checksum"
    if ("aes-256-gcm" in h.codec) != (h.key is not None):
        return "codec and key disagree"
    if h.key is not None and not re.fullmatch(r"[0-9a-f]{32}", h.key):
        return "bad key id"
    return None


def _changes_problem(h: Header, changes: list[Change]) -> str | None:
    if len(changes) != h.count:
        return f"it holds {len(changes)} changes, header says {h.count}"
    lsn, at = h.after_lsn, h.after_us
    for c in changes:
        if not lsn < c.lsn <= h.last_lsn:
            return f"change lsn {c.lsn} out of order or outside ({h.after_lsn}, {h.last_lsn}]"
        if not (h.after_us < c.at_us <= h.through_us and at <= c.at_us):  # one commit: one time
            return f"change time {c.at_us} out of order or outside the segment's time"
        if c.kind not in KINDS or not _TABLE.match(c.table):
            return f"change {c.lsn} has an unknown kind or a bad table name"
        lsn, at = c.lsn, c.at_us
    if changes and changes[-1].lsn != h.last_lsn:
        return "its last change is not last_lsn"
    return None
