"""A manifest whose contents are not its own backup's chose which rows a
RESTORE without backup_id brought back (the eighteenth round's `agree`
findings 1 and 3).

A plain copy of an older backup's manifest over the newest one's (valid
checksum, no key needed) is invalid ("it names backup …"), but its namespace
and times were read from the copied bytes: the newest counted as the older
one, and RESTORE DATABASE, RESTORE TABLE (replace = true too) took an older
backup and said completed. A manifest re-sealed to contradict this server's
record of its backup (another namespace, a time in 2099, another scope) did
the same. Now the file's name and the catalog's record of it are what count:
such a manifest is damaged, with the record's namespace and times, and
VERIFY BACKUP, SHOW BACKUPS IN, ATTACH BACKUPS, keep_last and RESTORE agree
on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import err, ok, reseal, rows

SETUP = ("CREATE NAMESPACE a; CREATE TABLE a.t (k INT PRIMARY KEY); "
         "CREATE TABLE a.u (k INT PRIMARY KEY); CREATE NAMESPACE b; "
         "CREATE TABLE b.t (k INT PRIMARY KEY); CREATE NAMESPACE dst; "
         "INSERT INTO a.t VALUES (1); INSERT INTO b.t VALUES (9)")
PLAIN = "WITH (compression = 'none')"


async def _id(client: Any, text: str) -> str:
    return str((await rows(client, text))[0]["backup_id"])


async def _keys(client: Any, ns: str) -> list[int]:
    return [r["k"] for r in await rows(client, f"SELECT k FROM {ns}.t ORDER BY k")]


def _manifest(tmp_path: Path, target: str, backup_id: str) -> Path:
    return tmp_path / "backups" / target / "manifests" / f"{backup_id}.json"


def _copy(tmp_path: Path, target: str, source: str, over: str) -> None:
    shutil.copyfile(_manifest(tmp_path, target, source), _manifest(tmp_path, target, over))


async def _refused(client: Any, text: str, named: str) -> str:
    message = await err(client, text, "BACKUP_INVALID")
    assert named in message, (text, message)
    return message


@pytest.mark.parametrize("pw", ["", "encryption_passphrase = 'pw'"])
async def test_a_copy_of_an_older_manifest_over_the_newest_is_refused(
        client: Any, tmp_path: Path, pw: str) -> None:
    """Between them a set's member and a table backup, which RESTORE took."""
    await ok(client, SETUP)
    opts = f"WITH ({pw})" if pw else PLAIN
    a1 = await _id(client, f"BACKUP DATABASE a TO 'tg' {opts}")
    await ok(client, "INSERT INTO a.t VALUES (2)")
    await ok(client, f"BACKUP DATABASE a, b TO 'tg' {opts}")
    await ok(client, f"BACKUP TABLE a.t TO 'tg' {opts}")
    await ok(client, "INSERT INTO a.t VALUES (3)")
    a3 = await _id(client, f"BACKUP DATABASE a TO 'tg' {opts}")
    _copy(tmp_path, "tg", a1, a3)

    with_pw, and_pw = (f" WITH ({pw})", f", {pw}") if pw else ("", "")
    (report,) = await rows(client, f"VERIFY BACKUP '{a3}' IN 'tg'{with_pw}")
    assert report["is_valid"] is False, report  # encrypted: its body is bound to a1
    listed = {r["backup_id"]: r for r in await rows(client, "SHOW BACKUPS IN 'tg'")}
    assert listed[a3]["error"] and listed[a3]["namespace"] == "a", listed[a3]
    for text in [f"RESTORE DATABASE a FROM 'tg' AS r{with_pw}",
                 f"RESTORE DATABASE a FROM 'tg' WITH (replace = true{and_pw})",
                 f"RESTORE TABLE a.t FROM 'tg' AS dst.t{with_pw}",
                 f"RESTORE TABLE a.t FROM 'tg' WITH (replace = true{and_pw})"]:
        assert "may be the newest" in await _refused(client, text, a3)
    assert await _keys(client, "a") == [1, 2, 3]
    # Named, the older one is restored; another namespace is not held up.
    await ok(client, f"RESTORE DATABASE a FROM 'tg' AS n WITH (backup_id = '{a1}'{and_pw})")
    assert await _keys(client, "n") == [1]
    await ok(client, f"RESTORE DATABASE b FROM 'tg' AS rb{with_pw}")


async def test_a_copy_of_another_namespaces_manifest_over_the_newest(
        client: Any, tmp_path: Path) -> None:
    await ok(client, SETUP)
    await ok(client, "BACKUP DATABASE a TO 'tg'")
    b1 = await _id(client, "BACKUP DATABASE b TO 'tg'")
    await ok(client, "INSERT INTO a.t VALUES (2)")
    a2 = await _id(client, "BACKUP DATABASE a TO 'tg'")
    _copy(tmp_path, "tg", b1, a2)
    await _refused(client, "RESTORE DATABASE a FROM 'tg' AS r", a2)
    await _refused(client, "RESTORE TABLE a.t FROM 'tg' AS dst.t", a2)
    await ok(client, "RESTORE DATABASE b FROM 'tg' AS rb")  # the record says a2 is a's
    # A copy of the target, which this server has no record of: nothing
    # vouches for the copy's namespace, so it may be any one's newest.
    shutil.copytree(tmp_path / "backups" / "tg", tmp_path / "backups" / "copied")
    for ns in ("a", "b"):
        await _refused(client, f"RESTORE DATABASE {ns} FROM 'copied' AS c_{ns}", a2)


async def test_a_copy_over_the_newest_beside_an_older_table_backup(
        client: Any, tmp_path: Path) -> None:
    await ok(client, SETUP)
    w1 = await _id(client, "BACKUP DATABASE a TO 'tg'")
    await ok(client, "BACKUP TABLE a.t TO 'tg'")
    await ok(client, "INSERT INTO a.t VALUES (3)")
    w3 = await _id(client, "BACKUP DATABASE a TO 'tg'")
    _copy(tmp_path, "tg", w1, w3)
    await _refused(client, "RESTORE DATABASE a FROM 'tg' AS r", w3)
    await _refused(client, "RESTORE TABLE a.t FROM 'tg' AS dst.t", w3)


async def test_a_copy_over_the_newest_sets_member(client: Any, tmp_path: Path) -> None:
    await ok(client, SETUP)
    s1 = (await _id(client, "BACKUP DATABASE a, b TO 'tg'")).rsplit(".", 1)[0]
    await ok(client, "INSERT INTO a.t VALUES (4)")
    await ok(client, "BACKUP DATABASE a TO 'tg'")
    await ok(client, "INSERT INTO a.t VALUES (5)")
    s2 = (await _id(client, "BACKUP DATABASE a, b TO 'tg'")).rsplit(".", 1)[0]
    _copy(tmp_path, "tg", f"{s1}.a", f"{s2}.a")
    for text in ["RESTORE DATABASE a FROM 'tg' AS r", "RESTORE TABLE a.t FROM 'tg' AS dst.t",
                 "RESTORE ALL FROM 'tg' WITH (replace = true)"]:
        await _refused(client, text, s2)
    assert await _keys(client, "a") == [1, 4, 5]


async def test_the_newest_resealed_as_another_namespaces_backup(
        client: Any, tmp_path: Path) -> None:
    """Its record says a's; VERIFY, SHOW BACKUPS IN and ATTACH BACKUPS (which
    rewrote the record from it) say it is damaged."""
    await ok(client, SETUP)
    await ok(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    b1 = await _id(client, f"BACKUP DATABASE b TO 'tg' {PLAIN}")
    await ok(client, "INSERT INTO a.t VALUES (2)")
    a2 = await _id(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    recorded = f"SELECT * FROM system.backups WHERE backup_id = '{a2}'"
    before = await rows(client, recorded)
    _copy(tmp_path, "tg", b1, a2)
    reseal(_manifest(tmp_path, "tg", a2), lambda d: d.update(backup_id=a2))
    for text in ["RESTORE DATABASE a FROM 'tg' AS r", "RESTORE TABLE a.t FROM 'tg' AS dst.t"]:
        assert "system.backups" in await _refused(client, text, a2)
    (report,) = await rows(client, f"VERIFY BACKUP '{a2}'")
    assert report["is_valid"] is False and "namespace 'b'" in report["errors"][0], report
    listed = {r["backup_id"]: r for r in await rows(client, "SHOW BACKUPS IN 'tg'")}
    assert listed[a2]["namespace"] == "a" and "contradicts" in listed[a2]["error"], listed[a2]
    attached = {r["backup_id"]: r for r in await rows(client, "ATTACH BACKUPS FROM 'tg'")}
    assert attached[a2]["status"] == "damaged", attached[a2]
    assert await rows(client, recorded) == before
    await _refused(client, "RESTORE DATABASE a FROM 'tg' AS r", a2)


async def test_the_newest_resealed_as_a_backup_of_some_tables(
        client: Any, tmp_path: Path) -> None:
    """A BACKUP TABLE's manifest re-sealed with the newest's id and times:
    only its scope contradicts the record (RESTORE DATABASE skipped it)."""
    await ok(client, SETUP)
    await ok(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    await ok(client, "INSERT INTO a.t VALUES (3); INSERT INTO a.u VALUES (7)")
    u = await _id(client, f"BACKUP TABLE a.u TO 'tg' {PLAIN}")
    a2 = await _id(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    times = json.loads(_manifest(tmp_path, "tg", a2).read_bytes())
    _copy(tmp_path, "tg", u, a2)
    reseal(_manifest(tmp_path, "tg", a2), lambda d: d.update(
        backup_id=a2, created_at=times["created_at"], snapshot_at=times["snapshot_at"]))
    message = await _refused(client, "RESTORE DATABASE a FROM 'tg' AS r", a2)
    assert "scope" in message, message


async def test_the_newest_resealed_as_another_servers(client: Any, tmp_path: Path) -> None:
    """Naming another server, the newest was not this server's namespace's
    backup, so RESTORE skipped it and took the older one; its record says a
    BACKUP here made it."""
    await ok(client, SETUP)
    await ok(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    await ok(client, "INSERT INTO a.t VALUES (2)")
    a2 = await _id(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")

    def other(doc: dict[str, Any]) -> None:
        doc["namespace_record"]["server"] = "sv-01m96a8j9200018j7sbt"

    reseal(_manifest(tmp_path, "tg", a2), other)
    for text in ["RESTORE DATABASE a FROM 'tg' AS r", "RESTORE TABLE a.t FROM 'tg' AS dst.t"]:
        assert "server" in await _refused(client, text, a2)


async def test_an_older_backup_resealed_to_2099_is_not_the_newest(
        client: Any, tmp_path: Path) -> None:
    await ok(client, SETUP)
    d1 = await _id(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    await ok(client, "INSERT INTO a.t VALUES (2)")
    d2 = await _id(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    later = "2099-01-01T00:00:00.000Z"
    reseal(_manifest(tmp_path, "tg", d1), lambda d: d.update(snapshot_at=later, created_at=later))
    (restored,) = await rows(client, "RESTORE DATABASE a FROM 'tg' AS r")
    assert restored["backup_id"] == d2 and await _keys(client, "r") == [1, 2]
    (report,) = await rows(client, f"VERIFY BACKUP '{d1}'")
    assert report["is_valid"] is False and "2099" in report["errors"][0], report


async def test_keep_last_drops_nothing_by_a_backup_resealed_to_2099(
        client: Any, tmp_path: Path) -> None:
    """keep_last = 2 kept d1 (dated 2099) and the new one, and dropped d2."""
    await ok(client, SETUP)
    d1 = await _id(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    await ok(client, "INSERT INTO a.t VALUES (2)")
    d2 = await _id(client, f"BACKUP DATABASE a TO 'tg' {PLAIN}")
    later = "2099-01-01T00:00:00.000Z"
    reseal(_manifest(tmp_path, "tg", d1), lambda d: d.update(snapshot_at=later, created_at=later))
    (job,) = await rows(client, "BACKUP DATABASE a TO 'tg' WITH (keep_last = 2, "
                                "compression = 'none')")
    assert job["status"] == "completed", job
    for backup_id in (d1, d2, job["backup_id"]):
        assert _manifest(tmp_path, "tg", backup_id).exists(), backup_id
