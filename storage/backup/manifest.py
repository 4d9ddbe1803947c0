"""Manifests: the one JSON document per backup that makes it exist.

A manifest is stored in canonical form (sorted keys, no whitespace, UTF-8) with a
`manifest_sha256` of that form minus the checksum field. A reader checks the
version first (so a newer format gets a clear message), then the checksum, then
that the bytes are exactly canonical: any flipped byte anywhere is caught.
Beyond `files` inside `tables`, table entries are opaque to this layer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from catalog.errors import BackupInvalid, CairnError, InvalidArgument

from .layout import is_backup_id, is_oid, utc_now

FORMAT = "cairn-backup"
FORMAT_VERSION = 1
KNOWN_FEATURES: frozenset[str] = frozenset()  # e.g. "zstd", "aes-256-gcm" in later versions

_DERIVED_TOTALS = ("tables", "files", "bytes", "objects", "object_bytes")


def canonical(value: Any) -> bytes:
    """The byte form that is hashed and stored."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _structure_problem(m: dict[str, Any]) -> str | None:
    """The first thing wrong with a manifest's shape, or None."""
    if not isinstance(m.get("backup_id"), str) or not is_backup_id(m["backup_id"]):
        return f"backup_id {m.get('backup_id')!r} is not a valid backup id"
    for key in ("namespace", "created_at", "snapshot_at"):
        if not isinstance(m.get(key), str) or not m[key]:
            return f"{key} must be a non-empty string"
    if m.get("label") is not None and not isinstance(m["label"], str):
        return "label must be a string or null"
    if not isinstance(m.get("encrypted"), bool):
        return "encrypted must be true or false"
    features = m.get("features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        return "features must be a list of strings"
    if not isinstance(m.get("tables"), list) or not all(isinstance(t, dict) for t in m["tables"]):
        return "tables must be a list of objects"
    objects = m.get("objects")
    if not isinstance(objects, list):
        return "objects must be a list"
    sizes: dict[str, int] = {}
    for obj in objects:
        if (
            not isinstance(obj, dict)
            or not is_oid(obj.get("oid", ""))
            or not _is_size(obj.get("size"))
        ):
            return f"objects entry {obj!r} needs a sha256 oid and a size"
        sizes[obj["oid"]] = obj["size"]
    for table in m["tables"]:
        files = table.get("files", [])
        if not isinstance(files, list):
            return "a table's files must be a list"
        for f in files:
            if (
                not isinstance(f, dict)
                or not is_oid(f.get("oid", ""))
                or not _is_size(f.get("size"))
            ):
                return f"file entry {f!r} needs a sha256 oid and a size"
            if sizes.get(f["oid"]) != f["size"]:
                return f"file object {f['oid']} is not listed in objects with size {f['size']}"
    if not isinstance(m.get("totals"), dict):
        return "totals must be an object"
    return None


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """Complete a caller's manifest for writing: defaults, the `objects` list
    (every file's object plus any the caller listed), totals and the checksum.

    Raises InvalidArgument when the caller's manifest is malformed."""
    try:
        m: dict[str, Any] = json.loads(canonical(manifest))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"manifest is not JSON-serialisable: {exc}") from exc
    m.pop("manifest_sha256", None)
    if m.setdefault("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise InvalidArgument(f"cannot write manifest format_version {m['format_version']!r}")
    m.setdefault("format", FORMAT)
    m.setdefault("features", [])
    m.setdefault("created_at", utc_now())
    m.setdefault("label", None)
    m.setdefault("encrypted", False)
    tables = m.setdefault("tables", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise InvalidArgument("manifest tables must be a list of objects")

    sizes: dict[str, int] = {}
    listed = m.get("objects", [])
    if not isinstance(listed, list):
        raise InvalidArgument("manifest objects must be a list")
    files = [f for t in tables for f in (t.get("files") or [])]
    for entry in [*listed, *files]:
        if (
            not isinstance(entry, dict)
            or not is_oid(entry.get("oid", ""))
            or not _is_size(entry.get("size"))
        ):
            raise InvalidArgument(f"manifest entry {entry!r} needs a sha256 oid and a size")
        if sizes.setdefault(entry["oid"], entry["size"]) != entry["size"]:
            raise InvalidArgument(f"object {entry['oid']} is listed with two sizes")
    m["objects"] = [{"oid": oid, "size": sizes[oid]} for oid in sorted(sizes)]

    totals = dict(m.get("totals") or {})
    totals.update(
        tables=len(tables),
        files=len(files),
        bytes=sum(f["size"] for f in files),
        objects=len(sizes),
        object_bytes=sum(sizes.values()),
    )
    totals.setdefault("rows", sum(int(t.get("rows") or 0) for t in tables))
    totals.setdefault("bytes_written", 0)
    m["totals"] = totals

    problem = _structure_problem(m)
    if problem:
        raise InvalidArgument(f"manifest of backup {m.get('backup_id')!r} is invalid: {problem}")
    m["manifest_sha256"] = _sha256(m)
    return m


def encode(sealed: dict[str, Any]) -> bytes:
    """The exact bytes of a sealed manifest on disk (canonical JSON and a newline)."""
    return canonical(sealed) + b"\n"


def decode(data: bytes, backup_id: str) -> dict[str, Any]:
    """Parse and check stored manifest bytes; BackupInvalid names the backup and
    the problem (truncated, not JSON, unknown version, checksum mismatch, …)."""
    name = f"manifest of backup '{backup_id}'"
    if not data.strip():
        raise BackupInvalid(f"{name} is empty")
    try:
        m = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BackupInvalid(f"{name} is corrupt: not valid UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise BackupInvalid(
            f"{name} is truncated or not JSON: {exc.msg} at byte {exc.pos}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise BackupInvalid(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(m, dict):
        raise BackupInvalid(f"{name} is not a JSON object")
    version = m.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise BackupInvalid(
            f"{name} has unknown format_version {version!r}; "
            f"this Cairn reads format_version {FORMAT_VERSION}"
        )
    stored = m.pop("manifest_sha256", None)
    if not isinstance(stored, str):
        raise BackupInvalid(f"{name} has no manifest_sha256 checksum")
    try:
        actual = _sha256(m)
    except (TypeError, ValueError) as exc:
        raise BackupInvalid(f"{name} is corrupt: {exc}") from exc
    if actual != stored:
        raise BackupInvalid(f"{name} is corrupt: manifest_sha256 mismatch")
    m["manifest_sha256"] = stored
    if encode(m) != data:
        raise BackupInvalid(f"{name} is corrupt: bytes differ from the canonical form")
    features = m.get("features")
    named = {f for f in features if isinstance(f, str)} if isinstance(features, list) else set()
    unknown = sorted(named - KNOWN_FEATURES)
    if unknown:
        raise BackupInvalid(
            f"{name} needs format features this Cairn does not support: {', '.join(unknown)}"
        )
    problem = _structure_problem(m)
    if problem:
        raise BackupInvalid(f"{name} is invalid: {problem}")
    if m["backup_id"] != backup_id:
        raise BackupInvalid(f"{name} is invalid: it names backup '{m['backup_id']}'")
    return m


def summary_error(backup_id: str, exc: CairnError) -> dict[str, Any]:
    """The listing entry for a manifest that cannot be read."""
    return {"backup_id": backup_id, "error": exc.message}
