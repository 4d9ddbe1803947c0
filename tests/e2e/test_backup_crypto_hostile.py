"""An encrypted target written into by someone who does not know the passphrase:
what the key vouches for must not be changeable without it."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from storage.backup.manifest import canonical, checksum
from tests.helpers import ok, sql

from .test_backup_restore import backup

KEY = "WITH (encryption_passphrase = 'sekrit')"


def reseal(path: Path, **changes: Any) -> None:
    """What anyone who can write to the target can do: change the public header of
    a manifest and recompute its checksum."""
    header = json.loads(path.read_bytes())
    header.update(changes)
    header.pop("manifest_sha256")
    header["manifest_sha256"] = checksum(header)
    path.write_bytes(canonical(header) + b"\n")


async def error_of(client: Any, text: str) -> dict[str, Any]:
    status, body = await sql(client, text)
    assert body["status"] == "error" and status < 500, body
    return dict(body["error"])


async def invalid(client: Any, backup_id: str) -> None:
    row = await backup(client, f"VERIFY BACKUP '{backup_id}' IN 'vault' {KEY}")
    assert row["is_valid"] is False and "public header" in json.dumps(row["errors"]), row


async def test_a_rewritten_public_header_does_not_pass_for_another_namespace(
    client: Any, tmp_path: Path
) -> None:
    await ok(client, """
        CREATE NAMESPACE payroll; CREATE TABLE payroll.pay (id BIGINT PRIMARY KEY, amount BIGINT);
        INSERT INTO payroll.pay VALUES (1, 100), (2, 200);
        CREATE NAMESPACE test; CREATE TABLE test.pay (id BIGINT PRIMARY KEY, amount BIGINT);
        INSERT INTO test.pay VALUES (1, 999999)""")
    real = await backup(client, f"BACKUP DATABASE payroll TO 'vault' {KEY}")
    other = await backup(client, f"BACKUP DATABASE test TO 'vault' {KEY}")
    manifests = tmp_path / "backups" / "vault" / "manifests"
    reseal(manifests / f"{other['backup_id']}.json", namespace="payroll")

    # The forged backup must not restore as payroll. This server's catalog
    # records it as test's (what its header says is not believed: see
    # tests/e2e/test_manifest_not_its_own.py), so it is test's newest, damaged,
    # and payroll's newest is the genuine one.
    err = await error_of(client, f"RESTORE DATABASE test FROM 'vault' AS pr {KEY}")
    assert err["code"] == "BACKUP_INVALID" and other["backup_id"] in err["message"], err
    assert "public header" in err["message"], err
    await invalid(client, other["backup_id"])
    names = [r["namespace"] for r in (await ok(client, "SHOW NAMESPACES"))[0]["rows"]]
    assert "pr" not in names

    # The genuine one still restores, newest or by id, with its own rows.
    (got,) = (await ok(client, f"RESTORE DATABASE payroll FROM 'vault' AS pr {KEY}"))[0]["rows"]
    assert got["backup_id"] == real["backup_id"], got
    await ok(client, f"RESTORE DATABASE payroll FROM 'vault' AS pr2 WITH ("
                     f"backup_id = '{real['backup_id']}', encryption_passphrase = 'sekrit')")
    for ns in ("pr", "pr2"):
        rows = (await ok(client, f"SELECT id, amount FROM {ns}.pay ORDER BY id"))[0]["rows"]
        assert rows == [{"id": 1, "amount": 100}, {"id": 2, "amount": 200}]

    # A moved time or label is refused the same way; the untouched header reads.
    reseal(manifests / f"{real['backup_id']}.json", snapshot_at="2020-01-01T00:00:00.000Z")
    await invalid(client, real["backup_id"])
    fresh = await backup(client, f"BACKUP DATABASE payroll TO 'vault' {KEY}")
    assert (await backup(client, f"VERIFY BACKUP '{fresh['backup_id']}' IN 'vault' {KEY}"))[
        "is_valid"]
    await ok(client, "INSERT INTO payroll.pay VALUES (3, 300)")  # still writable


def plant_key(keys: Path, key_id: str, n: int, r: int, p: int) -> None:
    """A key file with valid fields and checksum, and scrypt parameters of its choosing."""
    doc: dict[str, Any] = {
        "format": "cairn-backup-key", "cipher": "aes-256-gcm", "kdf": "scrypt",
        "n": n, "r": r, "p": p, "salt": "00" * 16, "key_check": "00" * 32,
        "created_at": "2026-12-03T00:00:00.000Z",
    }
    doc["file_sha256"] = hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    (keys / f"{key_id}.json").write_text(json.dumps(doc))


async def test_a_planted_key_file_cannot_make_scrypt_take_gigabytes(
    client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # n = 2^20, r = 32, p = 16 were each within range: 4.2 GB and minutes per try.
    # Here 512 MiB, ~5 s (so the old code's run stays cheap): over the cost cap.
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1), (2)")
    first = await backup(client, f"BACKUP DATABASE app TO 'vault' {KEY}")
    keys = tmp_path / "backups" / "vault" / "keys"
    plant_key(keys, "0" * 32, 1 << 18, 16, 1)  # sorts first: a writer tries it first
    started = time.monotonic()
    second = await backup(client, f"BACKUP DATABASE app TO 'vault' {KEY}")
    assert time.monotonic() - started < 10 and second["bytes_written"] == 0  # same key: dedup
    assert "skipping unreadable key file" in caplog.text  # skipped, not derived
    assert "scrypt parameters out of range" in caplog.text

    # A reader sent to it by the manifest's (public) `key`: refused, not derived.
    reseal(tmp_path / "backups" / "vault" / "manifests" / f"{first['backup_id']}.json",
           key="0" * 32)
    started = time.monotonic()
    err = await error_of(client, f"RESTORE DATABASE app FROM 'vault' AS c WITH (backup_id = "
                                 f"'{first['backup_id']}', encryption_passphrase = 'sekrit')")
    row = await backup(client, f"VERIFY BACKUP '{first['backup_id']}' IN 'vault' {KEY}")
    assert time.monotonic() - started < 10
    assert err["code"] == "BACKUP_INVALID" and "scrypt parameters out of range" in err["message"]
    assert row["is_valid"] is False and "scrypt parameters" in json.dumps(row["errors"]), row
    await ok(client, f"RESTORE DATABASE app FROM 'vault' AS c WITH ("
                     f"backup_id = '{second['backup_id']}', encryption_passphrase = 'sekrit')")
    assert (await ok(client, "SELECT count(*) AS n FROM c.t"))[0]["rows"] == [{"n": 2}]


@pytest.mark.parametrize(("n", "r", "p"), [(1 << 17, 1, 1), (1 << 20, 1, 2), (1 << 16, 1, 16)])
async def test_a_key_file_scrypt_itself_refuses_is_damage_not_a_500(
    client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, n: int, r: int, p: int
) -> None:
    """Within every cap (memory, work), but past scrypt's own bound n < 2^(16 r):
    OpenSSL answered MemoryError, a 500 for VERIFY, RESTORE and SHOW BACKUP,
    and every encrypted BACKUP into the target failed (the writer tries each
    key file). Now it is out of range: skipped by a writer, refused to a reader."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    first = await backup(client, f"BACKUP DATABASE app TO 'vault' {KEY}")
    plant_key(tmp_path / "backups" / "vault" / "keys", "0" * 32, n, r, p)
    second = await backup(client, f"BACKUP DATABASE app TO 'vault' {KEY}")
    assert second["status"] == "completed"
    assert "n < 2^(16 r)" in caplog.text
    reseal(tmp_path / "backups" / "vault" / "manifests" / f"{first['backup_id']}.json",
           key="0" * 32)
    err = await error_of(client, f"RESTORE DATABASE app FROM 'vault' AS c WITH (backup_id = "
                                 f"'{first['backup_id']}', encryption_passphrase = 'sekrit')")
    assert err["code"] == "BACKUP_INVALID" and "n < 2^(16 r)" in err["message"], err
    row = await backup(client, f"VERIFY BACKUP '{first['backup_id']}' IN 'vault' {KEY}")
    assert row["is_valid"] is False


async def test_a_plain_backup_does_not_pass_for_an_encrypted_one(
    client: Any, tmp_path: Path
) -> None:
    """A backup written without the key (here a plain one of `test`, relabelled
    `payroll`, as anyone who can write to the target can make) is not restored
    or verified when the passphrase says the backup is encrypted."""
    await ok(client, """
        CREATE NAMESPACE payroll; CREATE TABLE payroll.pay (id BIGINT PRIMARY KEY, amount BIGINT);
        INSERT INTO payroll.pay VALUES (1, 100);
        CREATE NAMESPACE test; CREATE TABLE test.pay (id BIGINT PRIMARY KEY, amount BIGINT);
        INSERT INTO test.pay VALUES (1, 999999)""")
    real = await backup(client, f"BACKUP DATABASE payroll TO 'vault' {KEY}")
    forged = await backup(client, "BACKUP DATABASE test TO 'vault' WITH (compression = 'none')")
    reseal(tmp_path / "backups" / "vault" / "manifests" / f"{forged['backup_id']}.json",
           namespace="payroll")

    err = await error_of(client, f"RESTORE DATABASE payroll FROM 'vault' AS pr WITH ("
                                 f"backup_id = '{forged['backup_id']}', "
                                 "encryption_passphrase = 'sekrit')")
    assert err["code"] == "BACKUP_INVALID" and "not encrypted" in err["message"], err
    assert forged["backup_id"] in err["message"], err
    row = await backup(client, f"VERIFY BACKUP '{forged['backup_id']}' IN 'vault' {KEY}")
    assert row["is_valid"] is False and "not encrypted" in json.dumps(row["errors"]), row
    # This server's catalog records it as test's (its relabelling is not
    # believed): test's newest is damaged, payroll's is the genuine one.
    err = await error_of(client, f"RESTORE DATABASE test FROM 'vault' AS pr {KEY}")
    assert err["code"] == "BACKUP_INVALID" and forged["backup_id"] in err["message"], err
    names = [r["namespace"] for r in (await ok(client, "SHOW NAMESPACES"))[0]["rows"]]
    assert "pr" not in names
    (got,) = (await ok(client, f"RESTORE DATABASE payroll FROM 'vault' AS pr {KEY}"))[0]["rows"]
    assert got["backup_id"] == real["backup_id"], got
    assert (await ok(client, "SELECT amount FROM pr.pay"))[0]["rows"] == [{"amount": 100}]


async def test_a_deleted_key_file_is_listed_as_damage(client: Any, tmp_path: Path) -> None:
    """Deleting `keys/<id>.json` (no passphrase needed) makes every backup made
    with it unrestorable for good, its salt gone; SHOW BACKUPS IN listed them
    whole (error NULL) to anyone without the passphrase, and RESTORE without
    backup_id took an older one. Now they are damage in every listing."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    first = await backup(client, f"BACKUP DATABASE app TO 'vault' {KEY}")
    for key in (tmp_path / "backups" / "vault" / "keys").glob("*.json"):
        key.unlink()
    [listed] = (await ok(client, "SHOW BACKUPS IN 'vault'"))[0]["rows"]
    assert listed["backup_id"] == first["backup_id"]
    assert listed["error"] is not None and "missing" in listed["error"], listed
    second = await backup(client, f"BACKUP DATABASE app TO 'vault' {KEY}")  # a new key
    rows = (await ok(client, "SHOW BACKUPS IN 'vault'"))[0]["rows"]
    errors = {r["backup_id"]: r["error"] for r in rows}
    assert errors[second["backup_id"]] is None and "missing" in errors[first["backup_id"]]


async def test_an_encrypted_set_under_its_lock_is_listed_as_such(
        client: Any, tmp_path: Path) -> None:
    """An encrypted set's scope is sealed, so SHOW BACKUPS IN listed the members
    of one whose lock is in the target as whole backups (error NULL) while
    RESTORE, given the passphrase, passed over it; a plain set's members say
    'being written'. The member's id names its set: listed as such."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                     "CREATE NAMESPACE b; INSERT INTO app.t VALUES (1)")
    members = (await ok(client, f"BACKUP DATABASE app, b TO 'vault' {KEY}"))[0]["rows"]
    set_id = members[0]["backup_id"].split(".", 1)[0]
    root = tmp_path / "backups" / "vault"
    (root / "manifests" / f"{members[1]['backup_id']}.json").unlink()  # not whole
    (root / "locks").mkdir(exist_ok=True)
    (root / "locks" / f"{set_id}.json").write_bytes(b"x")
    [listed] = (await ok(client, "SHOW BACKUPS IN 'vault'"))[0]["rows"]
    assert listed["error"] is not None and set_id in listed["error"], listed
