"""Archives of one namespace in one target under two passphrases (or a plain
one and an encrypted one): VERIFY ARCHIVE checks the windows its passphrase
opens and names the others as not checked; RESTORE agrees per window.

Until 2026-12-07 VERIFY ARCHIVE with either passphrase was BACKUP_INVALID
"wrong encryption_passphrase for backup <the other window's base>" (and
without one "is encrypted"): such a target could never be called valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.config import Config
from storage.backup.manifest import canonical, checksum
from tests.helpers import err, job_row, ok, rows

from .test_archiving import wait_shipped

A, B = "passphrase-aaa", "passphrase-bbb"


def _with(passphrase: str | None) -> str:
    return f" WITH (encryption_passphrase = '{passphrase}')" if passphrase else ""


async def _two_archives(client: Any, first: str | None, second: str | None) -> list[Any]:
    """app archived into 'arch' under `first`, stopped, then under `second`:
    SHOW RESTORE POINTS' two windows (row 1 in the first, rows 1, 2 in the second)."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    for n, passphrase in ((1, first), (2, second)):
        key = f", encryption_passphrase = '{passphrase}'" if passphrase else ""
        await ok(client, f"START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms'{key})")
        await ok(client, f"INSERT INTO app.t VALUES ({n})")
        await wait_shipped(client, timeout=60)
        await ok(client, "STOP ARCHIVING DATABASE app")
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert len(points) == 2 and all(p["error"] is None for p in points), points
    return points


async def _verify(client: Any, passphrase: str | None) -> tuple[dict[str, Any], str]:
    result = (await ok(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'" + _with(passphrase)))[-1]
    (report,) = result["rows"]
    return report, str(result.get("message"))


async def _checks_its_own(client: Any, points: list[Any], keys: list[str | None],
                          whys: list[str]) -> None:
    for i, passphrase in enumerate(keys):
        other = points[1 - i]
        report, message = await _verify(client, passphrase)
        assert report["is_valid"] and not report["errors"], report
        assert [w["base_backup_id"] for w in report["windows"]] == [points[i]["base_backup_id"]]
        assert report["not_checked"] == [{
            "start_time": other["start_time"], "end_time": other["end_time"],
            "base_backup_id": other["base_backup_id"], "archive_id": other["archive_id"],
            "why": whys[i]}], report
        assert "1 window(s) of namespace 'app' not checked" in message, message
        assert other["base_backup_id"] in message, message
        (job,) = await rows(client, "SELECT job_id FROM system.jobs WHERE job_type = 'verify' "
                                    "ORDER BY created_at DESC, job_id DESC LIMIT 1")
        row = await job_row(client, job["job_id"])
        assert row["status"] == "completed", row
        assert "not checked" in row["error_message"] and whys[i] in row["error_message"], row
        assert other["base_backup_id"] in row["error_message"], row
        # RESTORE agrees per window: its own restores, the other's is refused
        # naming the window and why, as VERIFY names it not checked
        key = f", encryption_passphrase = '{passphrase}'" if passphrase else ""
        await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r{i} WITH "
                         f"(as_of = '{points[i]['end_time']}'{key})")
        assert await rows(client, f"SELECT id FROM r{i}.t ORDER BY id") == [
            {"id": n} for n in range(1, i + 2)]
        msg = await err(client, f"RESTORE DATABASE app FROM 'arch' AS x WITH "
                                f"(as_of = '{other['end_time']}'{key})", "BACKUP_INVALID")
        assert f"window of archive {other['archive_id']}" in msg, msg
        assert f"which is {whys[i]}" in msg and other["base_backup_id"] in msg, msg


async def test_two_passphrases_each_verifies_its_own_windows(client: Any) -> None:
    points = await _two_archives(client, A, B)
    await _checks_its_own(client, points, [A, B], [
        "archived under another encryption_passphrase"] * 2)
    # a passphrase that opens no window is refused as before
    msg = await err(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"
                            + _with("passphrase-ccc"), "BACKUP_INVALID")
    assert "wrong encryption_passphrase" in msg, msg


async def test_a_plain_archive_then_an_encrypted_one_each_verifies(client: Any) -> None:
    points = await _two_archives(client, None, B)
    await _checks_its_own(client, points, [None, B], ["encrypted", "not encrypted"])



async def test_no_window_checked_is_not_valid(client: Any, cairn_config: Config) -> None:
    """A's base removed from the target: its changes are left without a
    window. With A no window is checked: not valid, saying so; with B, A's
    changes are named not checked, without a base."""
    first, second = await _two_archives(client, A, B)
    root = Path(cairn_config.backup_roots[0])
    (root / "arch" / "manifests" / f"{first['base_backup_id']}.json").unlink()
    report, _ = await _verify(client, A)
    assert not report["is_valid"] and report["windows"] == [], report
    assert report["not_checked"][0]["base_backup_id"] == second["base_backup_id"], report
    assert any("no window of namespace 'app'" in e for e in report["errors"]), report
    report, _ = await _verify(client, B)
    assert report["is_valid"], report
    assert [(w["archive_id"], w["base_backup_id"], w["why"]) for w in report["not_checked"]] == [
        (first["archive_id"], None, "archived under another encryption_passphrase")], report


async def test_a_base_rekeyed_by_someone_without_the_key_is_no_other_passphrase(
        client: Any, cairn_config: Config) -> None:
    """Two archives under A; someone who can write the target (not the key)
    points the first one's base at a key of their own passphrase (its header's
    `key`, manifest_sha256 recomputed). The archive's segments still open with
    A: it is A's archive, its base damaged. VERIFY with A said it valid, that
    window 'not checked: archived under another encryption_passphrase'."""
    first, _ = await _two_archives(client, A, A)
    await ok(client, "BACKUP DATABASE app TO 'arch' WITH (encryption_passphrase = 'theirs')")
    arch = Path(cairn_config.backup_roots[0]) / "arch" / "manifests"
    theirs = [p for p in arch.iterdir()
              if json.loads(p.read_bytes())["key"] != json.loads(
                  (arch / f"{first['base_backup_id']}.json").read_bytes())["key"]]
    other_key = json.loads(theirs[0].read_bytes())["key"]
    path = arch / f"{first['base_backup_id']}.json"
    doc = json.loads(path.read_bytes())
    doc["key"] = other_key
    del doc["manifest_sha256"]
    doc["manifest_sha256"] = checksum(doc)
    path.write_bytes(canonical(doc) + b"\n")
    # refused as a base of a single-passphrase target whose key was swapped
    # always was (a wrong passphrase for that base), never valid
    msg = await err(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'" + _with(A),
                    "BACKUP_INVALID")
    assert first["base_backup_id"] in msg, msg
    msg = await err(client, f"RESTORE DATABASE app FROM 'arch' AS x WITH "
                            f"(as_of = '{first['end_time']}', encryption_passphrase = '{A}')",
                    "BACKUP_INVALID")
    assert first["base_backup_id"] in msg, msg
