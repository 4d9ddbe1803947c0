"""Manifests whose JSON parses but which no BACKUP writes, planted in a target
(plain, zstd, encrypted) with a valid checksum: nested 900 to 1000 deep
(json.loads took them, then the canonical encoding the checksum is checked on
overran Python's recursion limit: 500 RecursionError, and 400 "the statement
nests too deeply" for SHOW BACKUPS IN), or a compressed or encrypted body
holding NaN, Infinity or a lone surrogate (500 ValueError, and a keep_last
BACKUP's job `failed` with "internal error" though its backup was written).
Each is a damaged backup: 422 BACKUP_INVALID naming it, listed with its error."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from storage.backup import envelope, manifest
from storage.backup.codec import RAW, ZSTD, Form, decode_bytes, encode_bytes
from storage.backup.crypto import Keys, binding_for_manifest, parse_key_file, unlock
from tests.helpers import err, fill, ok, rows

PASS = "manifest values"
KINDS = {"plain": "compression = 'none'", "zstd": "compression = 'zstd'",
         "enc": f"encryption_passphrase = '{PASS}'"}
DEPTHS = (65, 500, *range(900, 1001), 100_000)


def nested(depth: int) -> bytes:
    return b'{"abcdefghij":' * depth + b"1" + b"}" * depth  # sparse enough for JSON_DENSITY


@functools.cache
def keys_of(target: Path, key_id: str | None) -> Keys | None:
    if key_id is None:
        return None
    doc = parse_key_file((target / "keys" / f"{key_id}.json").read_bytes(), key_id, "t")
    return unlock(doc, key_id, PASS)  # scrypt: once per target


def plant(target: Path, source_id: str, backup_id: str, value: bytes) -> None:
    """The source backup's manifest as `backup_id`, with `"zz": value` (raw JSON
    text) added to it, or to its body when it has one, sealed as Cairn seals
    (the canonical form, `manifest_sha256`, the body's `header_sha256`)."""
    data = (target / "manifests" / f"{source_id}.json").read_bytes()
    header = json.loads(data)
    header["backup_id"] = backup_id
    del header["manifest_sha256"]
    if "body" not in header:
        parts = manifest.members(header)
    else:
        keys = keys_of(target, header.get("key"))
        form = Form("", ZSTD if "zstd" in header["body"]["codec"] else RAW, keys)
        stored = base64.b64decode(header["body"]["data"])
        body = json.loads(decode_bytes(stored, form, "body", 1 << 26,
                                       binding_for_manifest(source_id)))
        if envelope.HEADER_SUM in body:
            public = {k: v for k, v in header.items() if k != "body"}
            body[envelope.HEADER_SUM] = manifest.checksum(public)
        inner = manifest.members(body)
        inner["zz"] = b'"zz":' + value
        plain = manifest.joined(inner)
        stored = encode_bytes(plain, form, binding_for_manifest(backup_id))
        header["body"] = {**header["body"], "data": base64.b64encode(stored).decode(),
                          "plain_size": len(plain)}
        parts = manifest.members(header)
    if "body" not in header:
        parts["zz"] = b'"zz":' + value
    total = hashlib.sha256(manifest.joined(parts)).hexdigest()
    parts.update(manifest.members({"manifest_sha256": total}))
    (target / "manifests" / f"{backup_id}.json").write_bytes(manifest.joined(parts) + b"\n")


async def two_backups(client: Any, kind: str) -> str:
    await fill(client, files=1)
    for _ in range(2):
        made = await rows(client, f"BACKUP DATABASE app TO '{kind}' WITH ({KINDS[kind]})")
    return str(made[0]["backup_id"])


async def refused_everywhere(client: Any, kind: str, planted: list[str], why: str,
                             verified: list[str]) -> None:
    """SHOW BACKUPS IN lists each planted manifest with its error (an encrypted
    one's body is not read there: no passphrase); VERIFY says why; RESTORE
    (newest, and by id) and RESTORE TABLE refuse with 422; a BACKUP with
    keep_last writes its backup, drops nothing and says so."""
    key = f", encryption_passphrase = '{PASS}'" if kind == "enc" else ""
    listed = {r["backup_id"]: r for r in await rows(client, f"SHOW BACKUPS IN '{kind}'")}
    for backup_id in planted:
        if kind == "enc":
            assert listed[backup_id]["encrypted"] is True, listed[backup_id]
        else:
            assert why in listed[backup_id]["error"], listed[backup_id]
    for backup_id in verified:
        checked = await rows(client, f"VERIFY BACKUP '{backup_id}' IN '{kind}'"
                                     + (f" WITH ({key[2:]})" if key else ""))
        assert checked[0]["is_valid"] is False and why in checked[0]["errors"][0], checked
        assert f"manifest of backup '{backup_id}'" in checked[0]["errors"][0]
    message = await err(client, f"RESTORE DATABASE app FROM '{kind}' AS copy"
                                + (f" WITH ({key[2:]})" if key else ""), "BACKUP_INVALID")
    assert ("cannot be read and may be the newest backup" if kind != "enc" else why) in message
    message = await err(client, f"RESTORE DATABASE app FROM '{kind}' AS copy WITH "
                                f"(backup_id = '{planted[-1]}'{key})", "BACKUP_INVALID")
    assert f"manifest of backup '{planted[-1]}'" in message and why in message, message
    await err(client, f"RESTORE TABLE app.blobs FROM '{kind}' AS app.copy"
                      + (f" WITH ({key[2:]})" if key else ""), "BACKUP_INVALID")
    message = await err(client, f"BACKUP DATABASE app TO '{kind}' WITH (keep_last = 1, "
                                f"{KINDS[kind]})", "BACKUP_INVALID")
    assert "is complete, but keep_last could not drop older ones" in message, message
    assert why in message and "nothing was dropped" in message, message
    job = (await rows(client, "SELECT status, error_message, result FROM system.jobs "
                              "WHERE job_type = 'backup' ORDER BY job_id DESC LIMIT 1"))[0]
    assert job["error_message"] == message and job["result"]["status"] == "completed", job
    assert "copy" not in {r["namespace"] for r in await rows(client, "SHOW NAMESPACES")}
    if kind != "enc":  # both read only an encrypted manifest's public header
        attached = {r["backup_id"]: r for r in await rows(client, f"ATTACH BACKUPS FROM '{kind}'")}
        assert all(attached[b]["status"] == "damaged" and why in attached[b]["error"]
                   for b in planted), attached
        message = await err(client, f"DROP BACKUP '{planted[-1]}' IN '{kind}'", "BACKUP_INVALID")
        assert f"manifest of backup '{planted[-1]}'" in message and why in message, message


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_manifest_nested_too_deep_is_damaged(
        client: Any, tmp_path: Path, kind: str) -> None:
    source = await two_backups(client, kind)
    target = tmp_path / "backups" / kind
    planted = [f"bk-zdeep{depth:06}" for depth in DEPTHS]
    for depth, backup_id in zip(DEPTHS, planted, strict=True):
        plant(target, source, backup_id, nested(depth))
    # VERIFY derives an encrypted target's key each time (scrypt, ~0.3 s): a few.
    verified = planted if kind != "enc" else planted[:2] + planted[-12:]
    await refused_everywhere(client, kind, planted, "nests JSON objects and arrays", verified)


@pytest.mark.parametrize("kind", ["zstd", "enc"])
@pytest.mark.parametrize(("value", "why"), [
    (b"NaN", "NaN or Infinity"), (b"-Infinity", "NaN or Infinity"),
    (b'["x","\\ud800"]', "lone surrogate"),
])
async def test_a_body_holding_what_json_cannot_say_is_damaged(
        client: Any, tmp_path: Path, kind: str, value: bytes, why: str) -> None:
    source = await two_backups(client, kind)
    plant(tmp_path / "backups" / kind, source, "bk-zzzz", value)
    await refused_everywhere(client, kind, ["bk-zzzz"], why, ["bk-zzzz"])


async def test_a_config_nested_too_deep_is_damaged(client: Any, tmp_path: Path) -> None:
    """config.json is read before anything else (msgspec skipped an unknown
    field's value by recursing: 500 RecursionError)."""
    await two_backups(client, "plain")
    config = tmp_path / "backups" / "plain" / "config.json"
    doc = json.loads(config.read_bytes())
    config.write_bytes(json.dumps(doc)[:-1].encode() + b', "zz": ' + nested(990) + b"}")
    for statement in ("SHOW BACKUPS IN 'plain'", "RESTORE DATABASE app FROM 'plain' AS copy",
                      "BACKUP DATABASE app TO 'plain'"):
        message = await err(client, statement, "BACKUP_INVALID")
        assert "config.json" in message and "nests JSON objects and arrays 991 deep" in message
    await ok(client, "SELECT count(*) FROM app.blobs")
