"""The stored form of a manifest, and every check made when reading it back.

A manifest file is always one line of canonical JSON and a newline. Without
features (format 1: no compression, no encryption) that JSON is the whole
manifest. With features (zstd, aes-256-gcm) it is a public header, and the rest
of the manifest travels in `body`, compressed and/or encrypted, in base64:

    {"backup_id":…,"body":{"codec":"zstd+aes-256-gcm","data":"<base64>","plain_size":…},
     "encrypted":true,"key":"<key id>","objects":[{"oid":…,"size":…}],"totals":{…},…}

The header is what anyone may read: enough to list the backup (SHOW BACKUPS),
to know which objects it holds (prune, DROP BACKUP) and which archive it is a
base of (`archive`, see schema.py), never table names, schemas or content
checksums. `manifest_sha256` covers the whole header, body included,
so any flipped byte anywhere is caught; an encrypted body is also authenticated
by AES-GCM under the key, and it carries `header_sha256`, the digest of the
public header, so that a header rewritten by someone without the key (another
namespace, another time, another archive cut, with `manifest_sha256`
recomputed) no longer matches the body it travels with."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from catalog.errors import BackupInvalid, InvalidArgument

from . import manifest, records, room
from .codec import RAW, ZSTD, Form, decode_bytes, encode_bytes
from .crypto import Keys, PassphraseError, binding_for_manifest
from .manifest import AES, FORMAT_VERSION, KNOWN_FEATURES, canonical, checksum

PUBLIC = frozenset(
    {
        "format", "format_version", "features", "backup_id", "namespace", "created_at",
        "snapshot_at", "label", "encrypted", "totals", "objects", "archive",
    }
)

# In an encrypted body: sha256 of the canonical public header without `body` and
# `manifest_sha256` (with `key`). Checked and removed when the body is read.
HEADER_SUM = "header_sha256"

KeyOpener = Callable[[str], Keys | None]


def pack(m: dict[str, Any], compress: bool, keys: Keys | None) -> tuple[bytes, dict[str, Any]]:
    """The bytes to store for a sealed manifest, and the manifest as a reader will
    return it: every field, with `manifest_sha256` (and `key` when encrypted),
    not the stored `body`."""
    if not m["features"]:
        parts = manifest.members(m)
        doc = {**m, "manifest_sha256": hashlib.sha256(manifest.joined(parts)).hexdigest()}
        parts.update(manifest.members({"manifest_sha256": doc["manifest_sha256"]}))
        data = manifest.joined(parts) + b"\n"
        if len(data) > records.MAX_BODY:  # as much as a manifest file holds (atomic.SMALL_MAX)
            raise room.too_big_manifest(m["backup_id"], len(data), m.get("tables", []))
        _refused_by_readers(data, m["backup_id"])
        return data, doc
    header = {k: v for k, v in m.items() if k in PUBLIC}
    header["objects"] = [{"oid": o["oid"], "size": o["size"]} for o in m["objects"]]
    body = {k: v for k, v in m.items() if k not in PUBLIC or k == "objects"}
    if keys is not None:
        header["key"] = keys.key_id
        body[HEADER_SUM] = checksum(header)
    plain = canonical(body)
    if len(plain) > records.MAX_BODY:
        raise room.too_big_manifest(m["backup_id"], len(plain), m.get("tables", []))
    _refused_by_readers(plain, m["backup_id"], " body")
    form = Form("", ZSTD if compress else RAW, keys)
    stored = encode_bytes(plain, form, binding_for_manifest(m["backup_id"]))
    codecs = ([ZSTD] if compress else []) + ([AES] if keys is not None else [])
    header["body"] = {
        "codec": "+".join(codecs),
        "data": base64.b64encode(stored).decode("ascii"),
        "plain_size": len(plain),
    }
    header["manifest_sha256"] = checksum(header)
    body.pop(HEADER_SUM, None)
    data = canonical(header) + b"\n"
    _refused_by_readers(data, m["backup_id"])
    return data, _merged(header, body)


def _refused_by_readers(data: bytes, backup_id: str, part: str = "") -> None:
    """INVALID_ARGUMENT, before the manifest is stored, if `_parse_json` would
    refuse `data` (its density or depth): a BACKUP must not report a backup
    that SHOW BACKUPS, VERIFY and RESTORE would then call corrupt (and
    `remember` keeps what is written as checked: VERIFY in the writing
    process said valid while RESTORE refused it)."""
    problem = records.dense_problem(data) or records.deep_problem(data)
    if problem:
        raise InvalidArgument(f"cannot write the manifest{part} of backup '{backup_id}': "
                              f"its readers would refuse it ({problem})")


def unpack(
    data: bytes, backup_id: str, open_key: KeyOpener, require_body: bool = True
) -> dict[str, Any]:
    """Parse and check stored manifest bytes; BackupInvalid names the backup and the
    problem (truncated, not JSON, unknown version, checksum mismatch, …).

    An encrypted body is opened with `open_key(key_id)`, which returns the keys,
    None when no passphrase was given, or raises PassphraseError. Without the keys
    the public header is returned when `require_body` is false, else
    PassphraseError is raised."""
    name = f"manifest of backup '{backup_id}'"
    if not data.strip():
        raise BackupInvalid(f"{name} is empty")
    header = _parse_json(data, name)
    version = header.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise BackupInvalid(
            f"{name} has unknown format_version {version!r}; "
            f"this Cairn reads format_version {FORMAT_VERSION}"
        )
    stored_sum = header.get("manifest_sha256")
    if not isinstance(stored_sum, str):
        raise BackupInvalid(f"{name} has no manifest_sha256 checksum")
    try:  # encoded once: the checksum covers the same members but its own
        parts = manifest.members(header)
    except (TypeError, ValueError) as exc:
        raise BackupInvalid(f"{name} is corrupt: {_unwritable(exc)}") from None
    if hashlib.sha256(manifest.joined(parts, without="manifest_sha256")).hexdigest() != stored_sum:
        raise BackupInvalid(f"{name} is corrupt: manifest_sha256 mismatch")
    if manifest.joined(parts) + b"\n" != data:
        raise BackupInvalid(f"{name} is corrupt: bytes differ from the canonical form")
    features = header.get("features")
    named = {f for f in features if isinstance(f, str)} if isinstance(features, list) else set()
    unknown = sorted(named - KNOWN_FEATURES)
    if unknown:
        raise BackupInvalid(
            f"{name} needs format features this Cairn does not support: {', '.join(unknown)}"
        )
    if "body" not in header:
        if named:
            raise BackupInvalid(f"{name} is corrupt: it names features but has no body")
        m = header
    else:
        m = _with_body(header, name, backup_id, open_key, require_body)
    problem = manifest.structure_problem(m)
    if problem:
        raise BackupInvalid(f"{name} is invalid: {problem}")
    if m["backup_id"] != backup_id:
        raise BackupInvalid(f"{name} is invalid: it names backup '{m['backup_id']}'")
    return m


# Manifests already unpacked and checked, by the SHA-256 of the bytes read. A
# BACKUP with keep_last reads every manifest of its target two or three times
# (the listing, the dropped one, the prune's referenced objects), RESTORE lists
# them to choose and reads its choice again, SHOW BACKUPS lists them all, VERIFY
# reads one again: each read parses, checksums twice, converts and checks, all
# holding the GIL (12 manifests of a 3,000-table namespace: 0.6-1.5 s each). The
# result is a function of the bytes and the backup id alone (nothing else is
# read to check them), so the same bytes need no second check; they are still
# read each time, and hashed: nothing the target says about them (name, size,
# mtime, ETag) is trusted, only SHA-256 against a collision. Kept pickled, each
# read gets a new document (callers may change theirs); read with or without
# the body they are the same document (only an encrypted one differs, and it
# is never kept: its body depends on the key). Damaged manifests are not kept:
# they are checked again at each read, and reported each time.
CACHE_MAX_BYTES = 64 << 20  # the pickled documents together (a 3,000-table one: ~2.5 MB)
# (pickled document, the same without `tables`: SHOW BACKUPS IN needs nothing
# else, its objects' oids: a prune needs nothing else)
Kept = tuple[bytes, bytes, tuple[str, ...]]
_cache: OrderedDict[tuple[str, bytes], Kept] = OrderedDict()
_cache_bytes = 0
_cache_lock = threading.Lock()


def unpack_checked(
    data: bytes, backup_id: str, open_key: KeyOpener, require_body: bool = True,
    light: bool = False,
) -> dict[str, Any]:
    """unpack(), remembering what these exact bytes (by their SHA-256) gave when
    they were not encrypted. Each call returns a new document. `light`: one
    that is not encrypted comes without its `tables` (checked all the same),
    for a listing that shows headers (SHOW BACKUPS IN): a 3,000-table one is
    ~0.14 s of CPU to copy out whole."""
    key = (backup_id, hashlib.sha256(data).digest())
    kept = _kept(key)
    if kept is not None:
        doc: dict[str, Any] = pickle.loads(kept[1] if light else kept[0])  # noqa: S301 (ours)
        return doc
    m = unpack(data, backup_id, open_key, require_body)
    _keep(key, m)
    return _without_tables(m) if light else m


def _without_tables(m: dict[str, Any]) -> dict[str, Any]:
    """`m` without `tables` when it is not encrypted (an encrypted one without
    them is one read without its key: kept whole, so it is not taken for one)."""
    return m if m.get("encrypted") is not False else {k: v for k, v in m.items() if k != "tables"}


def checked_oids(data: bytes, backup_id: str, open_key: KeyOpener) -> list[str]:
    """The oids of the objects of the manifest `data` (unpack_checked without
    its body required: every check made), not copying the whole document out of
    the memo: a prune's `referenced_objects` reads every manifest for them."""
    kept = _kept((backup_id, hashlib.sha256(data).digest()))
    if kept is not None:
        return list(kept[2])
    return [o["oid"] for o in unpack_checked(data, backup_id, open_key, False)["objects"]]


def _kept(key: tuple[str, bytes]) -> Kept | None:
    with _cache_lock:
        kept = _cache.get(key)
        if kept is not None:
            _cache.move_to_end(key)
        return kept


def remember(data: bytes, backup_id: str, m: dict[str, Any]) -> None:
    """Keep `m` as what `data` unpacks to, read with or without its body: a
    manifest a repository has just written, `pack`'s two results. A BACKUP's
    keep_last lists the target's manifests right after writing its own, and
    reading those bytes back parsed, re-encoded and checked them again (~4 ms
    of 50 tables, seconds of 150,000 files)."""
    _keep((backup_id, hashlib.sha256(data).digest()), m)


def forget_all() -> None:
    """Empty the memo (tests: a process that has read nothing yet)."""
    global _cache_bytes
    with _cache_lock:
        _cache.clear()
        _cache_bytes = 0


def _keep(key: tuple[str, bytes], m: dict[str, Any]) -> None:
    global _cache_bytes
    if m.get("encrypted") is not False:
        return  # an encrypted one (or a header that does not say): never kept
    packed = pickle.dumps(m, protocol=5)
    light = pickle.dumps(_without_tables(m), protocol=5)
    oids = tuple(o["oid"] for o in m["objects"])
    if _size(packed, light, oids) > CACHE_MAX_BYTES // 4:
        return
    with _cache_lock:
        if key not in _cache:
            _cache[key] = (packed, light, oids)
            _cache_bytes += _size(packed, light, oids)
            while _cache_bytes > CACHE_MAX_BYTES and _cache:
                _, gone = _cache.popitem(last=False)
                _cache_bytes -= _size(*gone)


def _size(packed: bytes, light: bytes, oids: tuple[str, ...]) -> int:
    return len(packed) + len(light) + 80 * len(oids)  # ~ a tuple of 64-character strings


def _with_body(
    header: dict[str, Any],
    name: str,
    backup_id: str,
    open_key: KeyOpener,
    require_body: bool,
) -> dict[str, Any]:
    desc = records.convert(header["body"], records.Body, f"{name} body descriptor")
    codecs = desc.codec
    try:
        stored = base64.b64decode(desc.data, validate=True)
    except (binascii.Error, ValueError):
        raise BackupInvalid(f"{name} is corrupt: its body is not base64") from None
    encrypted = AES in codecs.split("+")
    if encrypted != (header.get("encrypted") is True):
        raise BackupInvalid(f"{name} is corrupt: body codec and 'encrypted' disagree")
    keys = None
    if encrypted:
        key_id = header.get("key")
        if not isinstance(key_id, str):
            raise BackupInvalid(f"{name} is corrupt: it names no key")
        try:
            keys = open_key(key_id)
            if keys is None:
                raise PassphraseError(
                    f"backup '{backup_id}' is encrypted: give its encryption_passphrase"
                )
        except PassphraseError:
            if require_body:
                raise
            return _merged(header, {})
    form = Form("", ZSTD if "zstd" in codecs.split("+") else RAW, keys)
    plain = decode_bytes(stored, form, f"{name} body", desc.plain_size, binding_for_manifest(backup_id))
    body = _parse_json(plain, f"{name} body")
    try:
        again = canonical(body)
    except (TypeError, ValueError) as exc:
        raise BackupInvalid(f"{name} body is corrupt: {_unwritable(exc)}") from None
    if again != plain:
        raise BackupInvalid(f"{name} is corrupt: body differs from the canonical form")
    if encrypted:
        _check_header_sum(header, body, name)
    clash = sorted((set(body) & (set(header) | PUBLIC)) - {"objects"})
    if clash:  # a public field in the body would be seen only with the key
        raise BackupInvalid(f"{name} is corrupt: body repeats {clash}")
    objects = body.get("objects")
    public = (
        [{"oid": o.get("oid"), "size": o.get("size")} for o in objects if isinstance(o, dict)]
        if isinstance(objects, list)
        else None
    )
    if public != header.get("objects"):
        raise BackupInvalid(f"{name} is corrupt: body and header list different objects")
    return _merged(header, body)


def _check_header_sum(header: dict[str, Any], body: dict[str, Any], name: str) -> None:
    """The encrypted body vouches for the public header it was written with. A body
    without `header_sha256` was written before it existed and is read as then."""
    if HEADER_SUM not in body:
        return
    public = {k: v for k, v in header.items() if k not in ("body", "manifest_sha256")}
    if body.pop(HEADER_SUM) != checksum(public):
        raise BackupInvalid(
            f"{name} is corrupt: its public header (namespace, times, label, archive, "
            "objects) is not the one its encrypted body was written with"
        )


def _merged(header: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in header.items() if k != "body"}, **body}


def _unwritable(exc: TypeError | ValueError) -> str:
    """Why a parsed manifest has no canonical form: json.loads takes NaN,
    Infinity and a lone surrogate escape (`"\\ud800"`), which Cairn never writes."""
    if isinstance(exc, UnicodeEncodeError):
        return "it holds a lone surrogate escape (like \\ud800), which stands for no character"
    if isinstance(exc, ValueError) and "Out of range float" in str(exc):
        return "it holds NaN or Infinity, which are no JSON numbers"
    return str(exc)


def _parse_json(data: bytes | bytearray, name: str) -> dict[str, Any]:
    dense = records.dense_problem(data) or records.deep_problem(data)
    if dense:
        raise BackupInvalid(f"{name} is corrupt: {dense}")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BackupInvalid(f"{name} is corrupt: not valid UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BackupInvalid(f"{name} is truncated or not JSON: {exc.msg} at byte {exc.pos}") from exc
    except (ValueError, RecursionError) as exc:
        raise BackupInvalid(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BackupInvalid(f"{name} is not a JSON object")
    return value
