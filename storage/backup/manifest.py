"""Manifests: the one document per backup that makes it exist.

This module completes a manifest's content for writing (objects, totals,
features); envelope.py turns it into stored bytes and back; schema.py is its
one typed definition, checked on every write and every read.

A file entry is `{"oid", "size", …}`: `size` is the file's own size. When the
object is encoded (compressed or encrypted) the entry also has `sha256`, the
file's own checksum, which a restore registers; otherwise the oid is that checksum.
An `objects` entry is `{"oid", "size"}` with `size` as stored, plus `sha256` and
`plain_size` of the content when the object is encoded."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from catalog.errors import CairnError, InvalidArgument

from . import schema
from .layout import is_oid, utc_now
from .schema import AES, FORMAT, FORMAT_VERSION, KNOWN_FEATURES, ZSTD

__all__ = ["AES", "FORMAT", "FORMAT_VERSION", "KNOWN_FEATURES", "ZSTD"]

# What an object's content is: (sha256 or None for a raw object, content size).
Content = tuple[str | None, int]


# A list longer than this is encoded this many items at a time: `json.dumps`
# is one C call holding the GIL for the whole value, ~1 s for the 150,000 file
# entries of a 40 MB manifest, during which no other client is answered.
SLICE = 2048


def _dumps(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _encode(value: Any, out: list[str]) -> None:
    """Append the pieces of `_dumps(value)`, each a bounded C call: a dict with
    string keys member by member, a long list SLICE items at a time (`json`
    writes a list as its items joined by "," between brackets, a dict as its
    members sorted by key, so the pieces join to exactly `_dumps(value)`)."""
    if isinstance(value, dict) and all(type(k) is str for k in value):
        out.append("{")
        for i, k in enumerate(sorted(value)):
            out.append(("," if i else "") + _dumps(k) + ":")
            _encode(value[k], out)
        out.append("}")
    elif isinstance(value, list) and len(value) > SLICE:
        out.append("[")
        for i in range(0, len(value), SLICE):
            out.append(("," if i else "") + _dumps(value[i : i + SLICE])[1:-1])
        out.append("]")
    else:
        out.append(_dumps(value))


def members(doc: dict[str, Any]) -> dict[str, bytes]:
    """Each top-level member of `doc` in canonical form (`"key":value`), by key:
    a document and the same with one member added or removed (its checksum) are
    joined from the same pieces instead of encoded twice."""
    encoded = {}
    for k in doc:
        if type(k) is not str:
            raise TypeError(f"keys must be str, not {type(k).__name__}")
        out = [_dumps(k), ":"]
        _encode(doc[k], out)
        encoded[k] = b"".join(piece.encode() for piece in out)
    return encoded


def joined(parts: dict[str, bytes], without: str | None = None) -> bytes:
    """The canonical form of the document whose `members` are `parts`."""
    return b"{" + b",".join(parts[k] for k in sorted(parts) if k != without) + b"}"


def canonical(value: Any) -> bytes:
    """The byte form that is hashed and stored."""
    if isinstance(value, dict) and all(type(k) is str for k in value):
        return joined(members(value))
    out: list[str] = []
    _encode(value, out)
    return b"".join(piece.encode() for piece in out)


def checksum(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def content_of(entry: dict[str, Any]) -> Content:
    """What an objects entry says its content is."""
    if "sha256" in entry:
        return entry["sha256"], entry["plain_size"]
    return None, entry["size"]


def _file_content(f: dict[str, Any]) -> Content:
    sha = f.get("sha256")
    return (None if sha is None or sha == f["oid"] else sha), f["size"]


def _object_problem(obj: Any) -> str | None:
    if not isinstance(obj, dict) or not is_oid(obj.get("oid", "")) or not _is_size(obj.get("size")):
        return f"objects entry {obj!r} needs an oid and a size"
    if ("sha256" in obj or "plain_size" in obj) and (
        not is_oid(obj.get("sha256", "")) or not _is_size(obj.get("plain_size"))
    ):
        return f"objects entry {obj['oid']} needs a sha256 and a plain_size"
    return None


def _file_problem(f: Any) -> str | None:
    if not isinstance(f, dict) or not is_oid(f.get("oid", "")) or not _is_size(f.get("size")):
        return f"file entry {f!r} needs an oid and a size"
    if "sha256" in f and not is_oid(f["sha256"]):
        return f"file entry {f['oid']} has a bad sha256"
    return None


def structure_problem(m: dict[str, Any]) -> str | None:
    """The first thing wrong with a manifest document, or None (see schema.py:
    the whole manifest, or the header alone of an encrypted one read without
    its key)."""
    return schema.problem(m)


def prepare(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Content]]:
    """Complete a caller's manifest (defaults) and gather every object it needs:
    each file's object plus any in the caller's `objects`, with its content.
    Raises InvalidArgument when the manifest is malformed."""
    try:
        m: dict[str, Any] = json.loads(canonical(manifest))
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"manifest is not JSON-serialisable: {exc}") from exc
    for derived in ("manifest_sha256", "body", "key"):
        m.pop(derived, None)
    if m.setdefault("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise InvalidArgument(f"cannot write manifest format_version {m['format_version']!r}")
    m.setdefault("format", FORMAT)
    m.setdefault("created_at", utc_now())
    m.setdefault("label", None)
    tables = m.setdefault("tables", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise InvalidArgument("manifest tables must be a list of objects")
    listed = m.get("objects", [])
    if not isinstance(listed, list):
        raise InvalidArgument("manifest objects must be a list")
    wanted: dict[str, Content] = {}
    entries: list[tuple[str, Content]] = []
    for obj in listed:
        problem = _object_problem(obj)
        if problem:
            raise InvalidArgument(f"manifest {problem}")
        entries.append((obj["oid"], content_of(obj)))
    for t in tables:
        files = t.get("files") or []
        if not isinstance(files, list):
            raise InvalidArgument("a table's files must be a list")
        for f in files:
            problem = _file_problem(f)
            if problem:
                raise InvalidArgument(f"manifest {problem}")
            entries.append((f["oid"], _file_content(f)))
    for oid, content in entries:
        if wanted.setdefault(oid, content) != content:
            raise InvalidArgument(f"object {oid} is listed with two sizes or contents")
    return m, wanted


def seal(
    m: dict[str, Any],
    wanted: dict[str, Content],
    stored: dict[str, int],
    features: list[str],
) -> dict[str, Any]:
    """The manifest to store: `objects` with their stored sizes, derived totals,
    features and `encrypted`. The checksum is added by the envelope."""
    m["features"] = sorted(set(features))
    m["encrypted"] = AES in m["features"]
    objects = []
    for oid in sorted(wanted):
        sha, plain = wanted[oid]
        entry: dict[str, Any] = {"oid": oid, "size": stored[oid]}
        if sha is not None:
            entry.update(sha256=sha, plain_size=plain)
        objects.append(entry)
    m["objects"] = objects
    files = [f for t in m["tables"] for f in (t.get("files") or [])]
    totals = dict(m.get("totals") or {})
    totals.update(
        tables=len(m["tables"]),
        files=len(files),
        bytes=sum(f["size"] for f in files),
        objects=len(objects),
        object_bytes=sum(o["size"] for o in objects),
    )
    totals.setdefault("rows", sum(int(t.get("rows") or 0) for t in m["tables"]))
    totals.setdefault("bytes_written", 0)
    m["totals"] = totals
    problem = structure_problem(m)
    if problem:
        raise InvalidArgument(f"manifest of backup {m.get('backup_id')!r} is invalid: {problem}")
    return m


def summary_error(backup_id: str, exc: CairnError) -> dict[str, Any]:
    """The listing entry for a manifest that cannot be read."""
    return {"backup_id": backup_id, "error": exc.message}
