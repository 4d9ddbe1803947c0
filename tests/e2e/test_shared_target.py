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
from tests.helpers import rows


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

