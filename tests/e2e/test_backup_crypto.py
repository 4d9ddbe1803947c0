"""Encrypted and compressed backups over HTTP: what needs the passphrase and what
does not, dedup across encrypted backups, and the passphrase never showing up
anywhere (jobs, errors, results, logs, the target's bytes)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from catalog import DataFile
from server.app import CAIRN
from tests.helpers import ok, sql

from .test_backup_restore import answers, backup, make_source

SECRET = "Tr0ub4dor&3-very-secret"
WITH_KEY = f"WITH (encryption_passphrase = '{SECRET}')"
WRONG = "WITH (encryption_passphrase = 'not the passphrase')"


async def expect(client: Any, text: str, code: str, fragment: str = "") -> dict[str, Any]:
    _, body = await sql(client, text)
    assert body["status"] == "error" and body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body
    return body


def target_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


async def test_encrypted_backup_round_trip_and_what_needs_the_key(
    client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await make_source(client)
    await ok(client, "FLUSH ALL TABLES IN app")
    before = await answers(client, "app")
    first = await backup(client, f"BACKUP DATABASE app TO 'vault' {WITH_KEY}")
    second = await backup(client, f"BACKUP DATABASE app TO 'vault' {WITH_KEY}")
    assert first["bytes_written"] > 0 and second["bytes_written"] == 0  # same key: dedup
    bid = first["backup_id"]

    # Listing needs no key.
    for text in ("SHOW BACKUPS IN 'vault'", "SHOW BACKUPS"):
        rows = (await ok(client, text))[0]["rows"]
        assert [r["encrypted"] for r in rows] == [True, True], text
        assert rows[1]["backup_id"] == bid and rows[1]["tables"] == 4 and rows[1]["rows"] > 0

    # Restore, verify and the table list need it; a wrong one is told apart.
    errors = [
        await expect(client, "RESTORE DATABASE app FROM 'vault' AS c1", "BACKUP_INVALID",
                     "encrypted: give its encryption_passphrase"),
        await expect(client, f"RESTORE DATABASE app FROM 'vault' AS c1 {WRONG}",
                     "BACKUP_INVALID", "wrong encryption_passphrase"),
        await expect(client, f"VERIFY BACKUP '{bid}'", "BACKUP_INVALID", "encryption_passphrase"),
        await expect(client, f"VERIFY BACKUP '{bid}' {WRONG}", "BACKUP_INVALID", "wrong"),
        await expect(client, f"SHOW BACKUP '{bid}'", "BACKUP_INVALID", "encrypted"),
        await expect(client, "BACKUP DATABASE app TO 'vault' WITH (encryption_passphrase = '')",
                     "INVALID_ARGUMENT", "encryption_passphrase"),
        await expect(client, f"BACKUP DATABASE app TO 'vault' WITH (encryption_passphrase "
                             f"'{SECRET}')", "PARSE_ERROR", "string literal"),
    ]
    names = [r["namespace"] for r in (await ok(client, "SHOW NAMESPACES"))[0]["rows"]]
    assert names == ["app"]  # the failed restores left nothing
    assert not list((tmp_path / "data" / "tmp").iterdir())

    restored = await backup(client, f"RESTORE DATABASE app FROM 'vault' AS copy {WITH_KEY}")
    assert restored["backup_id"] == second["backup_id"]
    assert await answers(client, "copy") == before
    verified = await backup(client, f"VERIFY BACKUP '{bid}' {WITH_KEY}")
    assert verified["is_valid"] and verified["files_checked"] > 0

    # DROP needs no key: it only needs the (public) list of objects.
    await backup(client, f"DROP BACKUP '{second['backup_id']}'")
    assert (await backup(client, f"DROP BACKUP '{bid}'"))["bytes_freed"] > 0
    objects = tmp_path / "backups" / "vault" / "objects"
    assert not [p for p in objects.rglob("*") if p.is_file()]

    # The passphrase is nowhere: not in jobs, errors, results, logs or the target.
    jobs = (await ok(client, "SELECT * FROM system.jobs"))[0]["rows"]
    statements = [j["statement"] for j in jobs if j["job_type"] in ("backup", "restore", "verify")]
    assert statements and all("encryption_passphrase = '***'" in s for s in statements
                              if "encryption_passphrase" in s)
    assert SECRET not in json.dumps(jobs)
    assert "not the passphrase" not in json.dumps(jobs)
    assert SECRET not in json.dumps(errors) and "not the passphrase" not in json.dumps(errors)
    assert SECRET not in json.dumps([first, second, restored, verified])
    assert SECRET not in caplog.text and "not the passphrase" not in caplog.text
    assert SECRET.encode() not in target_bytes(tmp_path / "backups")


async def test_object_names_and_manifest_reveal_nothing_without_the_key(
    client: Any, tmp_path: Path
) -> None:
    await ok(
        client,
        "CREATE NAMESPACE app; CREATE TABLE app.secret_table (word TEXT);"
        "INSERT INTO app.secret_table VALUES ('swordfish'); FLUSH TABLE app.secret_table;"
        "INSERT INTO app.secret_table VALUES ('buffered-plaintext')",
    )
    b = await backup(client, f"BACKUP DATABASE app TO 'vault' {WITH_KEY}")
    files = (await ok(client, "SELECT files FROM system.tables"))[0]["rows"]
    assert files == [{"files": 1}]
    stored = target_bytes(tmp_path / "backups" / "vault")
    for needle in (b"secret_table", b"swordfish", b"buffered-plaintext", b"word"):
        assert needle not in stored
    shas = [f.sha256 for f in client.server.app[CAIRN].catalog.scan(DataFile)]
    assert shas and all(s.encode() not in stored for s in shas)  # no plaintext hashes
    manifest = json.loads((tmp_path / "backups" / "vault" / "manifests"
                           / f"{b['backup_id']}.json").read_text())
    assert manifest["encrypted"] is True and "tables" not in manifest
    assert set(manifest["features"]) == {"aes-256-gcm", "zstd"}


async def test_compression_option(client: Any, tmp_path: Path) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT, note TEXT)")
    values = ", ".join(f"({i}, 'the same words again and again {i % 7}')" for i in range(3000))
    await ok(client, f"INSERT INTO app.t VALUES {values}")  # buffered rows: exported
    packed = await backup(client, "BACKUP DATABASE app TO 'z'")
    raw = await backup(client, "BACKUP DATABASE app TO 'r' WITH (compression = 'none')")
    assert packed["bytes"] == raw["bytes"]
    assert raw["bytes_written"] == raw["bytes"]  # 'none' stores everything as it is
    assert packed["bytes_written"] <= raw["bytes_written"]
    m = json.loads(next((tmp_path / "backups" / "r" / "manifests").iterdir()).read_text())
    assert m["features"] == [] and "tables" in m  # 'none', unencrypted: format 1 exactly
    await ok(client, "RESTORE DATABASE app FROM 'z' AS z; RESTORE DATABASE app FROM 'r' AS r")
    for ns in ("z", "r"):
        rows = (await ok(client, f"SELECT count(*) AS n FROM {ns}.t"))[0]["rows"]
        assert rows == [{"n": 3000}]


async def test_a_plain_keep_last_leaves_the_encrypted_backups_it_cannot_read(client: Any) -> None:
    """An encrypted manifest read without its passphrase is its header, and
    its scope is sealed: a plain keep_last (a schedule's KEEP LAST has no
    passphrase) counted an encrypted table backup and an encrypted set member
    as whole backups of the namespace, and dropped them and a whole one.
    Found by trying. What it cannot read it now neither counts nor drops,
    and SHOW BACKUPS IN shows its scope unknown (NULL)."""
    await ok(client, "CREATE NAMESPACE kt; CREATE TABLE kt.a (id BIGINT PRIMARY KEY);"
                     "CREATE TABLE kt.b (id BIGINT PRIMARY KEY); INSERT INTO kt.a VALUES (1);"
                     "CREATE NAMESPACE ot; CREATE TABLE ot.c (id BIGINT PRIMARY KEY)")
    secret = "WITH (encryption_passphrase = 'pw')"
    sealed = [(await backup(client, text))["backup_id"] for text in [
        f"BACKUP TABLE kt.b TO 'kt' {secret}",
        f"BACKUP DATABASE kt TO 'kt' {secret}",
        f"BACKUP DATABASE kt, ot TO 'kt' {secret}",
    ]]
    await backup(client, "BACKUP DATABASE kt TO 'kt' WITH (keep_last = 1)")
    await backup(client, "BACKUP DATABASE kt TO 'kt' WITH (keep_last = 1)")
    listed = (await ok(client, "SHOW BACKUPS IN 'kt'"))[0]["rows"]
    ids = {r["backup_id"] for r in listed}
    assert all(any(i == s or i.startswith(s) for i in ids) for s in sealed), (sealed, ids)
    assert sum(1 for r in listed if not r["encrypted"]) == 1  # the plain ones: keep_last = 1
    assert {r["scope"] for r in listed if r["encrypted"]} == {None}


@pytest.mark.parametrize("value", ["918273645546372819", "3.14159265", "TRUE"])
async def test_a_passphrase_of_the_wrong_type_is_not_echoed(client: Any, value: str) -> None:
    """The type error named the value: "must be a str, not 918273645546372819"."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    for text in (f"BACKUP DATABASE app TO 'x' WITH (encryption_passphrase = {value})",
                 f"RESTORE DATABASE app FROM 'x' AS b WITH (encryption_passphrase = {value})",
                 f"VERIFY BACKUP 'bk-x' IN 'x' WITH (encryption_passphrase = {value})",
                 f"START ARCHIVING DATABASE app TO 'x' WITH (encryption_passphrase = {value})"):
        _, body = await sql(client, text)
        error = body["error"]
        assert error["code"] == "INVALID_ARGUMENT", body
        said = "option 'encryption_passphrase' must be a string, not "
        assert error["message"] in (said + "a number", said + "a boolean"), error
        assert value.lower() not in error["message"].lower() and "3.14" not in error["message"]
