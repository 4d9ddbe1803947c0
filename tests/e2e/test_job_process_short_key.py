"""An encrypted backup's key derived in a job process that cannot allocate
scrypt's memory (32 MiB): a shortage of the machine's, 503 naming it, never
a damaged backup. VERIFY said the backup INVALID, "scrypt refused a key
file's parameters (Not enough memory to derive key …)", while a RESTORE of
the same backup (its key derived in the server) restored it."""

from __future__ import annotations

import os
import resource
from typing import Any

import pytest

from server.config import Config
from storage import jobblame, jobproc
from tests.helpers import Quiet, err, fill, ok, rows

KEY = "encryption_passphrase = 'correct horse'"


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "nice"  # not starved by the suite's other worker
    return cairn_config


def _kept() -> int:
    """The pid of the job process kept for the next call: a new one (no key
    derived in it yet), its imports done (it answered a call)."""
    with jobproc._guard:
        old, jobproc._idle[:] = list(jobproc._idle), []
    for proc in old:
        proc.end()
    pid = jobproc.call(Quiet(), os.getpid)
    with jobproc._guard:
        assert [p.pid for p in jobproc._idle] == [pid]
    return pid


async def test_a_key_the_job_process_has_no_memory_to_derive_is_unavailable(
        client: Any) -> None:
    await fill(client, files=2, rows=20)
    backup_id = (await rows(client, f"BACKUP DATABASE app TO 'nightly' WITH ({KEY})"))[0][
        "backup_id"]
    pid = _kept()
    with open(f"/proc/{pid}/status") as f:
        data = next(int(line.split()[1]) << 10 for line in f if line.startswith("VmData:"))
    # Room for the call, not for scrypt's 32 MiB (as under ulimit -d, or
    # vm.overcommit_memory = 2, where the kernel refuses, not kills).
    resource.prlimit(pid, resource.RLIMIT_DATA, (data + (16 << 20), resource.RLIM_INFINITY))
    message = await err(client, f"VERIFY BACKUP '{backup_id}' WITH ({KEY})", "UNAVAILABLE")
    assert "out of memory" in message and "key file" in message, message
    assert not jobblame.blamed()
    # The same process (kept: its call ended cleanly), with its memory back: a retry passes.
    resource.prlimit(pid, resource.RLIMIT_DATA, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' WITH ({KEY})"))[0]
    assert report["is_valid"] is True, report
    await ok(client, f"RESTORE DATABASE app FROM 'nightly' AS copy WITH "
                     f"(backup_id = '{backup_id}', {KEY})")
    assert (await rows(client, "SELECT count(*) AS n FROM copy.blobs"))[0]["n"] == 40
