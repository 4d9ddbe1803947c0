"""A backup re-sealed with a max_seq at the top of the format (2^62, which the
decoder takes): VERIFY called it valid and RESTORE raised the server's one
sequence to 2^62, so every later write took a number past 2^62 and BACKUP of
every namespace written since refused its own manifest (400 INVALID_ARGUMENT
"max_seq: expected int <= 4611686018427387904"), BACKUP ALL and START ARCHIVING
too, across restarts (found by trying, as an attacker who can write the
target). Now a restore takes row versions up to 2^60, or up to the server's
own sequence where that is higher (storage/backup/seqs.py): past that RESTORE
DATABASE, TABLE and ALL are BACKUP_INVALID before anything is copied and VERIFY
calls the backup invalid in the same words; at the bound it is restored, and
the server still backs up and restores what it writes afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ok, reseal, rows

from .test_backup_crypto_hostile import error_of
from .test_backup_restore import backup

RESTORE_SEQ = 2**60


def forge(target: Path, backup_id: str, max_seq: int) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["max_seq"] = max_seq

    reseal(target / "manifests" / f"{backup_id}.json", change)


async def backs_up_and_restores(client: Any) -> None:
    """Namespace other, written after the forged restore: its backup verifies
    and restores (it was refused at BACKUP)."""
    await ok(client, "INSERT INTO other.t VALUES (2)")
    done = await backup(client, "BACKUP DATABASE other TO 'later'")
    assert (await backup(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'later'"))["is_valid"]
    await ok(client, "RESTORE DATABASE other FROM 'later' AS other_copy")
    assert await rows(client, "SELECT id FROM other_copy.t ORDER BY id") == [
        {"id": 1}, {"id": 2}]
    await ok(client, "BACKUP ALL TO 'everything'")


async def two_namespaces(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a');"
                     "CREATE NAMESPACE other; CREATE TABLE other.t (id INT PRIMARY KEY);"
                     "INSERT INTO other.t VALUES (1)")


@pytest.mark.parametrize("max_seq", [2**62, RESTORE_SEQ + 1])
async def test_a_backup_past_the_restore_bound_is_refused_by_verify_and_restore(
        client: Any, tmp_path: Path, max_seq: int) -> None:
    await two_namespaces(client)
    done = await backup(client, "BACKUP DATABASE app TO 'r' WITH (compression = 'none')")
    bid = done["backup_id"]
    forge(tmp_path / "backups" / "r", bid, max_seq)

    report = await backup(client, f"VERIFY BACKUP '{bid}' IN 'r'")
    assert report["is_valid"] is False, report
    for text in (f"RESTORE DATABASE app FROM 'r' AS copy WITH (backup_id = '{bid}')",
                 f"RESTORE TABLE app.t FROM 'r' AS other.t2 WITH (backup_id = '{bid}')"):
        err = await error_of(client, text)
        assert err["code"] == "BACKUP_INVALID", err
        assert f"max_seq {max_seq}: a restore takes row versions up to 2^60" in err["message"]
        assert report["errors"] == [err["message"]], (report, err)  # VERIFY says what RESTORE does
    assert "copy" not in [r["namespace"] for r in await rows(client, "SHOW NAMESPACES")]
    assert [r["table_name"] for r in await rows(client, "SHOW TABLES IN other")] == ["t"]
    await backs_up_and_restores(client)


async def test_a_backup_set_past_the_restore_bound_is_refused(client: Any, tmp_path: Path) -> None:
    await two_namespaces(client)
    done = (await ok(client, "BACKUP ALL TO 's' WITH (compression = 'none')"))[0]["rows"]
    member = next(r["backup_id"] for r in done if r["namespace"] == "other")
    forge(tmp_path / "backups" / "s", member, 2**62)
    await ok(client, "DROP NAMESPACE app CASCADE; DROP NAMESPACE other CASCADE")

    err = await error_of(client, "RESTORE ALL FROM 's'")
    assert err["code"] == "BACKUP_INVALID", err
    assert f"backup '{member}' holds row versions up to max_seq {2**62}" in err["message"], err
    report = await backup(client, f"VERIFY BACKUP '{member}' IN 's'")
    assert report["errors"] == [err["message"]], (report, err)
    assert not {"app", "other"} & {r["namespace"] for r in await rows(client, "SHOW NAMESPACES")}


async def test_a_backup_at_the_restore_bound_restores_and_backups_go_on(
        client: Any, tmp_path: Path) -> None:
    """The most a restore takes: restored, and the server, whose sequence is
    now past 2^60, still writes backups that it verifies and restores."""
    await two_namespaces(client)
    done = await backup(client, "BACKUP DATABASE app TO 'r' WITH (compression = 'none')")
    forge(tmp_path / "backups" / "r", done["backup_id"], RESTORE_SEQ)
    assert (await backup(client, f"VERIFY BACKUP '{done['backup_id']}' IN 'r'"))["is_valid"]
    await ok(client, f"RESTORE DATABASE app FROM 'r' AS copy WITH "
                     f"(backup_id = '{done['backup_id']}')")
    await ok(client, "INSERT INTO copy.t VALUES (2, 'b')")  # sorts after the restored rows
    assert await rows(client, "SELECT id, v FROM copy.t ORDER BY id") == [
        {"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    await backs_up_and_restores(client)
    again = await backup(client, "BACKUP DATABASE copy TO 'r3'")
    await ok(client, f"RESTORE DATABASE copy FROM 'r3' AS copy2 WITH "
                     f"(backup_id = '{again['backup_id']}')")
    assert len(await rows(client, "SELECT id FROM copy2.t")) == 2
