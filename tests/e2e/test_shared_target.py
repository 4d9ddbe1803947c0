"""Several servers, one local target: one server's clean-up leaves alone what
the others are doing there (docs/backup-format.md, Prune and locks)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from server.app import create_app
from server.repos import writer_of
from tests.e2e.test_backup_resume import config_of, crash_a_backup
from tests.helpers import ok, rows, target_files


async def test_start_up_clean_up_spares_other_servers_writes_in_flight(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    """A server restarted after a crash emptied the shared target's `tmp/`,
    so another server's backup writing there failed after moving everything
    ("cannot write to backup target …: No such file or directory"). Start-up
    now removes its own temp files (their names carry the server's mark) and
    other servers' only once they are a day old."""
    job_id = crash_a_backup(tmp_path, server_process)
    tmp = tmp_path / "backups" / "nightly" / "tmp"
    tmp.mkdir(exist_ok=True)
    mine = writer_of(str(tmp_path / "data"))
    other = writer_of(str(tmp_path / "other-data"))
    names = {
        "mine": f"{mine}-{'a' * 32}.tmp",  # the crashed server's own: junk now
        "other": f"{other}-{'b' * 32}.tmp",  # another server's write in flight
        "old_style": f"{'c' * 32}.tmp",  # a server of an earlier version, in flight
        "abandoned": f"{other}-{'d' * 32}.tmp",  # another server's, two days old
    }
    for name in names.values():
        (tmp / name).write_bytes(b"x" * 1000)
    old = time.time() - 2 * 86400
    os.utime(tmp / names["abandoned"], (old, old))

    client = await aiohttp_client(create_app(config_of(tmp_path, window="0")))
    (job,) = await rows(client, f"SHOW JOB '{job_id}'")
    assert job["status"] == "failed" and "interrupted by server restart" in job["error_message"]
    assert sorted(os.listdir(tmp)) == sorted([names["other"], names["old_style"]])



async def test_a_dead_servers_lock_is_cleaned_by_another_servers_prune(
    tmp_path: Path, server_process: Any, aiohttp_client: Any
) -> None:
    """Server A dies mid-backup and never comes back: its lock and the objects
    only it stored stayed in the shared target for good, since only A's own
    start-up cleaned them. Another server's prune (keep_last here) now removes
    a lock of this host whose process is gone once it has not been written for
    a day (or that server's resume_window, when longer), with its objects; a
    fresher one may still be kept for A's resume."""
    crash_a_backup(tmp_path, server_process)  # A: data dir tmp_path/data
    target = tmp_path / "backups" / "nightly"
    (lock,) = target_files(target)["locks"]
    left = target_files(target)["objects"]
    assert len(left) == 3

    cfg = config_of(tmp_path)
    cfg.storage.data_dir = str(tmp_path / "other")
    other = await aiohttp_client(create_app(cfg))
    await ok(other, "CREATE NAMESPACE crm; CREATE TABLE crm.t (id INT, data TEXT)")

    async def backup_keeping_one(i: int) -> dict[str, Any]:
        await ok(other, f"INSERT INTO crm.t VALUES ({i}, 'row {i}'); FLUSH TABLE crm.t")
        (b,) = await rows(other, "BACKUP DATABASE crm TO 'nightly' WITH (keep_last = 1)")
        return b

    await backup_keeping_one(1)
    await backup_keeping_one(2)  # drops the first: a prune, but A's lock is fresh
    assert target_files(target)["locks"] == {lock}
    assert left <= target_files(target)["objects"]

    old = time.time() - 2 * 86400
    os.utime(target / "locks" / lock, (old, old))
    b = await backup_keeping_one(3)
    held = target_files(target)
    assert held["locks"] == set()
    assert not left & held["objects"]
    (verified,) = await rows(other, f"VERIFY BACKUP '{b['backup_id']}'")
    assert verified["is_valid"], verified
