"""Manifest documents for the repository benchmarks, shaped like the ones BACKUP
writes (storage/backup/schema.py checks every manifest written or read)."""

from __future__ import annotations

from typing import Any

STAMP = "2026-01-01T00:00:00.000Z"


def column(name: str, typ: str = "BIGINT", params: list[int] | None = None, *,
           key: bool = False, default: Any = None, since: int = 1) -> dict[str, Any]:
    return {"name": name, "type": typ, "params": params or [], "not_null": key,
            "primary_key": key, "has_default": default is not None, "default": default,
            "system": False, "since": since}


def system_columns() -> list[dict[str, Any]]:
    return [{"name": n, "type": t, "params": [], "not_null": True, "primary_key": False,
             "has_default": False, "default": None, "system": True, "since": 1}
            for n, t in (("_updated", "TIMESTAMP"), ("_deleted", "BOOLEAN"))]


def table_entry(name: str, files: list[dict[str, Any]],
                schemas: list[list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A SHARED table whose files are `files` ({"oid", "size", ...}: rows and
    sequence numbers are filled in when missing); `schemas` are the columns of
    each version (default: one BIGINT key column)."""
    schemas = schemas or [[column("id", key=True)]]
    entries = []
    for i, f in enumerate(files):
        rows = f.get("rows") or 1
        first = 1 + 1_000_000 * i
        entries.append({"rows": rows, "schema_version": len(schemas), "min_seq": first,
                        "max_seq": first + rows - 1, "source": "parquet", **f,
                        **({"rows": rows} if not f.get("rows") else {})})
    key = [c["name"] for c in schemas[-1] if c["primary_key"]]
    return {
        "name": name, "table_type": "shared", "schema_version": len(schemas),
        "primary_key": key, "options": {}, "created_at": STAMP,
        "schemas": [{"version": v + 1, "columns": [*cols, *system_columns()], "created_at": STAMP}
                    for v, cols in enumerate(schemas)],
        "files": entries, "rows": sum(f["rows"] for f in entries),
        "max_seq": max((f["max_seq"] for f in entries), default=0),
    }


def backup_doc(backup_id: str, namespace: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "backup_id": backup_id, "namespace": namespace, "snapshot_at": STAMP,
        "namespace_record": {"created_at": STAMP, "options": {}},
        "max_seq": max((t["max_seq"] for t in tables), default=0), "tables": tables,
    }
