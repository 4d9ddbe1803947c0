"""A VERIFY whose job process is short of memory (RLIMIT_DATA: the kernel
refuses an allocation, as under `ulimit -d` or vm.overcommit_memory = 2)
wherever it is in its work: 503 naming the shortage, or the right answer,
never a sound backup called invalid; and a retry with the memory back
passes. So for the check of the files a RESTORE fetched, in that process.
Encrypted: the key, the manifest and the objects are decrypted there."""

from __future__ import annotations

import contextlib
import resource
from typing import Any

import pytest

from server import faults
from server.config import Config
from storage import jobblame, jobproc
from tests.e2e.test_job_process_short_key import KEY, _kept
from tests.helpers import fill, rows, sql


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "nice"  # not starved by the suite's other worker
    return cairn_config


def _data(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) << 10 for line in f if line.startswith("VmData:"))


@pytest.mark.parametrize("room", [0, 1 << 20, 2 << 20, 4 << 20, 16 << 20, 64 << 20])
async def test_a_verify_short_of_memory_is_unavailable_or_valid(client: Any, room: int) -> None:
    await fill(client, files=3, rows=200, width=3000)
    backup_id = (await rows(client, f"BACKUP DATABASE app TO 'nightly' WITH ({KEY})"))[0][
        "backup_id"]
    pid = _kept()
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' WITH ({KEY})"))[0]
    assert report["is_valid"] is True, report  # its key derived: kept in the process
    resource.prlimit(pid, resource.RLIMIT_DATA, (_data(pid) + room, resource.RLIM_INFINITY))
    try:
        verify = await sql(client, f"VERIFY BACKUP '{backup_id}' WITH ({KEY})")
        # The restore's check of its files, in the same process (kept, as it is).
        restore = await sql(client, f"RESTORE DATABASE app FROM 'nightly' AS copy WITH "
                                    f"(backup_id = '{backup_id}', {KEY})")
    finally:
        resource.prlimit(pid, resource.RLIMIT_DATA, (resource.RLIM_INFINITY,) * 2)
    for status, body in (verify, restore):
        assert status in (200, 503), (room, status, body)
        if status == 503:
            # The shortage named, or (with no room at all: a C++ allocation in one of
            # DuckDB's or pyarrow's threads aborts the process) the process's death
            # named, run again: either way nothing called damaged.
            message = body["error"]["message"]
            assert "out of memory" in message or (
                room == 0 and "the job process ended" in message), (
                room, body)
    if verify[0] == 200:
        (answer,) = verify[1]["results"][0]["rows"]
        assert answer["is_valid"] is True, (room, answer)
    assert not jobblame.blamed()
    # The memory back: both pass.
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' WITH ({KEY})"))[0]
    assert report["is_valid"] is True, report
    if restore[0] == 503:
        await rows(client, f"RESTORE DATABASE app FROM 'nightly' AS copy WITH "
                           f"(backup_id = '{backup_id}', {KEY})")
    assert (await rows(client, "SELECT count(*) AS n FROM copy.blobs"))[0]["n"] == 600


def _vsz(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


@pytest.mark.parametrize("room", [0, *(n << 20 for n in (1, 2, 3, 4, 5, 6, 8, 12, 16))])
async def test_a_file_checked_short_of_memory_is_named_and_never_blamed(
        client: Any, room: int) -> None:
    """At each file's read, its job process (every process a check runs in:
    a check run again runs in a new one) gets `room` bytes of address space
    more (ulimit -v): pyarrow's or DuckDB's check refused memory is 503
    naming the file (DuckDB's said "a file of the backup" until 2026-12-08),
    VERIFY and RESTORE alike, and nothing is blamed."""
    await fill(client, files=2, rows=200, width=3000)
    backup_id = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
    limited: list[int] = []

    def limit(info: dict[str, Any]) -> None:
        for pid in jobproc.busy():
            resource.prlimit(pid, resource.RLIMIT_AS, (_vsz(pid) + room, resource.RLIM_INFINITY))
            limited.append(pid)

    faults.register("check.reading", limit)
    try:
        verify = await sql(client, f"VERIFY BACKUP '{backup_id}'")
        restore = await sql(client, f"RESTORE DATABASE app FROM 'nightly' AS copy WITH "
                                    f"(backup_id = '{backup_id}')")
    finally:
        faults.clear()
        for pid in limited:
            with contextlib.suppress(OSError):
                resource.prlimit(pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
    for status, body in (verify, restore):
        assert status in (200, 503), (room, status, body)
        if status == 503:
            message = body["error"]["message"]
            assert message.startswith("cannot check file ") and "out of memory" in message, (
                room, message)
    if verify[0] == 200:
        assert verify[1]["results"][0]["rows"][0]["is_valid"] is True, verify
    assert not jobblame.blamed() and not jobblame._deaths
    if restore[0] == 503:
        await rows(client, f"RESTORE DATABASE app FROM 'nightly' AS copy WITH "
                           f"(backup_id = '{backup_id}')")
    assert (await rows(client, "SELECT count(*) AS n FROM copy.blobs"))[0]["n"] == 400
