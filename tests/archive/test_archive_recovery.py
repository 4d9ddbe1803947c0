"""Archiving after a cycle that failed: a segment written whose outcome was
unknown (the reply lost, the catalog batch after it failed), a base backup that
failed, a target emptied while archiving runs. The archive goes on with no
overlap and no gap, or takes a new base, and SHOW ARCHIVES never says
`running` with no error while nothing restorable is being shipped."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import faults
from storage.backup import Repository, resolve_target
from tests.helpers import ok, rows

from .test_archive_guards import all_ids, backups, wait_for
from .test_archiving import wait_shipped

PASS = "correct horse battery"


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()


async def restore_end(client: Any, as_name: str, options: str = "") -> set[int]:
    """Restore app as of the newest window's end (VERIFY ARCHIVE valid first)."""
    with_pass = f" WITH (encryption_passphrase = '{PASS}')" if options else ""
    report = (await rows(client, f"VERIFY ARCHIVE FOR DATABASE app IN 'arch'{with_pass}"))[0]
    assert report["is_valid"] is True, report["errors"]
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    newest = max(points, key=lambda p: p["end_time"])
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS {as_name} WITH "
                     f"(as_of = '{newest['end_time']}'{options})")
    return await all_ids(client, as_name)


async def test_an_encrypted_archive_takes_a_new_base(client: Any) -> None:
    """DROP BACKUP of an encrypted archive's base after a segment was written:
    the new base's job failed with "cannot pickle 'AESGCM'" (the archiver's
    Repository, holding its opened keys, went to the job process), every
    60 s, while SHOW ARCHIVES said running. Now the base is taken."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH "
                     f"(interval = '100ms', encryption_passphrase = '{PASS}')")
    await ok(client, "INSERT INTO app.t VALUES (2)")
    await wait_shipped(client)
    [first] = await backups(client)
    await ok(client, f"DROP BACKUP '{first['backup_id']}' IN 'arch'")
    await ok(client, "INSERT INTO app.t VALUES (3)")
    [second] = await wait_for(lambda: backups(client))
    assert second["label"] == "archive base" and second["encrypted"] is True
    await ok(client, "INSERT INTO app.t VALUES (4)")
    shown = await wait_shipped(client)
    assert shown["status"] == "running" and shown["last_error"] is None, shown
    jobs = await rows(client, "SELECT status, error_message FROM system.jobs "
                              "WHERE job_type = 'backup'")
    assert {j["status"] for j in jobs} == {"completed"}, jobs
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert await restore_end(client, "r", f", encryption_passphrase = '{PASS}'") == {1, 2, 3, 4}


def test_a_repository_with_opened_keys_pickles_without_them(tmp_path: Path) -> None:
    repo = Repository(resolve_target("arch", [str(tmp_path)], {}), passphrase=PASS)
    assert repo.writer_keys() is not None
    copy = pickle.loads(pickle.dumps(repo))
    assert copy.store.write_keys is None and copy.store.keyring == []
    assert copy.writer_keys() == repo.writer_keys()  # the same key file, opened again
