"""What a hostile writer of a backup target can make a reader spend: a
manifest (or a compressed manifest body) that would be millions of JSON objects,
a body claiming more than a manifest file may hold. Each is refused before it
is parsed, and SHOW BACKUPS (damaged, not skipped), VERIFY (invalid) and
RESTORE (refused) say the same thing."""

from __future__ import annotations

import base64
import hashlib
import json
import string
from pathlib import Path
from typing import Any

from bench.manifests import backup_doc, column, table_entry
from server.config import Config
from storage.backup.codec import ZSTD, Form, encode_bytes
from storage.backup.crypto import binding_for_manifest
from storage.backup.manifest import canonical, checksum
from storage.backup.records import JSON_DENSITY, dense_problem
from storage.backup.schema import PUBLIC
from tests.helpers import sql

FUTURE = "2099-01-01T00:00:00.000Z"  # the newest backup: RESTORE must look at it


async def _source(client: Any, root: Path, target: str) -> dict[str, Any]:
    """A plain backup of namespace `src` in `target`; its manifest."""
    status, body = await sql(client, "CREATE NAMESPACE IF NOT EXISTS src; "
                                     "CREATE TABLE IF NOT EXISTS src.t (id BIGINT PRIMARY KEY); "
                                     "INSERT INTO src.t VALUES (1)")
    assert status == 200, body
    status, body = await sql(
        client, f"BACKUP DATABASE src TO '{target}' WITH (compression = 'none')")
    assert status == 200, body
    backup_id = body["results"][0]["rows"][0]["backup_id"]
    path = root / target / "manifests" / f"{backup_id}.json"
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return doc


def _header(doc: dict[str, Any], backup_id: str) -> dict[str, Any]:
    header = {k: v for k, v in doc.items()
              if k in PUBLIC and k not in ("features", "manifest_sha256", "key")}
    return {**header, "backup_id": backup_id, "created_at": FUTURE, "features": ["zstd"]}


def _zstd_body(header: dict[str, Any], plain: bytes, plain_size: int | None = None) -> bytes:
    stored = encode_bytes(plain, Form("", ZSTD, None), binding_for_manifest(header["backup_id"]))
    header = {**header, "body": {"codec": "zstd", "data": base64.b64encode(stored).decode(),
                                 "plain_size": len(plain) if plain_size is None else plain_size}}
    return canonical({**header, "manifest_sha256": checksum(header)}) + b"\n"


async def agree(client: Any, target: str, backup_id: str, wanted: str) -> str:
    """SHOW BACKUPS lists `backup_id` as damaged, VERIFY finds it invalid and
    RESTORE refuses it (by id and as the newest), all with one message holding
    `wanted`; that message."""
    status, body = await sql(client, f"SHOW BACKUPS IN '{target}'")
    assert status == 200, body
    rows = [r for r in body["results"][0]["rows"] if r["backup_id"] == backup_id]
    assert len(rows) == 1, body
    message = rows[0]["error"]
    assert message and wanted in message, rows
    status, body = await sql(client, f"VERIFY BACKUP '{backup_id}' IN '{target}'")
    if status == 200:
        verdict = body["results"][0]["rows"][0]
        assert verdict["is_valid"] is False, verdict
        assert message in json.dumps(verdict), (message, verdict)
    else:
        assert status == 422 and body["error"]["message"] == message, body
    for options in (f" WITH (backup_id = '{backup_id}')", ""):
        status, body = await sql(client, f"RESTORE DATABASE src FROM '{target}' AS copy{options}")
        assert status == 422 and body["error"]["code"] == "BACKUP_INVALID", body
        assert message in body["error"]["message"], (message, body)
    status, body = await sql(client, "SHOW TABLES IN copy")
    assert status == 404, body
    return str(message)


async def test_a_dense_manifest_is_refused_before_it_is_parsed(
    client: Any, cairn_config: Config
) -> None:
    """`[{},{},…]` costs a reader some 70 bytes of objects per 3 bytes of file,
    and seconds holding the GIL: refused by counting, not by parsing."""
    root = Path(cairn_config.backup.roots[0])
    doc = await _source(client, root, "dense")
    plain = {k: v for k, v in doc.items() if k != "manifest_sha256"}
    plain.update(backup_id="bk-dense", created_at=FUTURE, x=[{}] * 300_000)
    data = canonical({**plain, "manifest_sha256": checksum(plain)}) + b"\n"
    (root / "dense" / "manifests" / "bk-dense.json").write_bytes(data)
    await agree(client, "dense", "bk-dense", "too many JSON objects and arrays for its size")


async def test_a_dense_compressed_body_is_refused_before_it_is_parsed(
    client: Any, cairn_config: Config
) -> None:
    root = Path(cairn_config.backup.roots[0])
    doc = await _source(client, root, "body")
    header = _header(doc, "bk-body")
    data = _zstd_body(header, b'{"x":[' + b"{}," * 1_000_000 + b"{}]}")
    assert len(data) < 64 << 10  # a few KB of file, 3 MB of body
    (root / "body" / "manifests" / "bk-body.json").write_bytes(data)
    message = await agree(client, "body", "bk-body", "too many JSON objects and arrays")
    assert "body" in message


async def test_a_body_larger_than_a_manifest_may_be_is_refused(
    client: Any, cairn_config: Config
) -> None:
    """A compressed body is no larger than a manifest file may be (64 MiB):
    what it claims is checked before anything is decompressed."""
    root = Path(cairn_config.backup.roots[0])
    doc = await _source(client, root, "big")
    header = _header(doc, "bk-big")
    plain = b'{"x":"' + b"a" * ((64 << 20) + 16) + b'"}'
    (root / "big" / "manifests" / "bk-big.json").write_bytes(_zstd_body(header, plain))
    await agree(client, "big", "bk-big", "plain_size")


def test_the_densest_manifest_backup_writes_passes_the_count() -> None:
    """A 64-column key of short names bounded in every file's key_range: one
    object or array per 14.7 bytes, the densest BACKUP writes; the limit is 8."""
    names = [a + b for a in string.ascii_lowercase for b in ["", *string.ascii_lowercase]][:64]
    files = [{"oid": hashlib.sha256(str(i).encode()).hexdigest(), "size": 1000 + i,
              "key_range": {n: [0, 1] for n in names}} for i in range(2000)]
    key = [column(n, key=True) for n in names]
    doc = backup_doc("bk-1", "ns", [table_entry("t", files, [key])])
    doc["objects"] = [{"oid": f["oid"], "size": f["size"]} for f in files]
    data = canonical(doc)
    assert dense_problem(data) is None
    assert len(data) / (data.count(b"{") + data.count(b"[")) < 2 * JSON_DENSITY
    assert dense_problem(b"[" + b"{}," * 100_000 + b"{}]") is not None


async def test_a_directory_of_a_manifests_name_is_listed_as_damaged(
    client: Any, cairn_config: Config
) -> None:
    """Listed by SHOW BACKUPS (it was skipped, while VERIFY, SHOW BACKUP and
    DROP BACKUP called it damaged), and refused by RESTORE."""
    root = Path(cairn_config.backup.roots[0])
    await _source(client, root, "dirs")
    (root / "dirs" / "manifests" / "bk-dir.json").mkdir()
    message = await agree(client, "dirs", "bk-dir", "bk-dir")
    status, body = await sql(client, "SHOW BACKUP 'bk-dir' IN 'dirs'")
    assert status == 422 and body["error"]["message"] == message, body
