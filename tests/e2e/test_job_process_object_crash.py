"""VERIFY reads a backup's objects in a job process: decrypted, decompressed
and hashed there. A process that dies there (a crash in the decryption, the
OOM killer) left a 503 that named nothing, "the job process ended in the
middle of its work (exit status -11)"; it names the object and how the
process ended, blames nothing, and a retry passes. An object damaged in the
middle (a frame that does not authenticate) is the same error to VERIFY
and to RESTORE."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.config import Config
from storage import jobblame, jobproc
from storage.backup.crypto import FRAME, HEADER_SIZE, TAG
from tests.helpers import err, fill, rows

KEY = "encryption_passphrase = 'correct horse'"


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "nice"  # not starved by the suite's other worker
    return cairn_config


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGKILL])
async def test_a_job_process_that_dies_reading_an_object_is_named(
        client: Any, signum: int) -> None:
    await fill(client, files=2, rows=20, width=20_000)  # two frames an object
    backup_id = (await rows(client, f"BACKUP DATABASE app TO 'nightly' WITH ({KEY})"))[0][
        "backup_id"]
    hits: list[int] = []

    def die(info: dict[str, Any]) -> None:
        hits.append(info["bytes_done"])
        if len(hits) == 1:
            for pid in jobproc.busy():
                os.kill(pid, signum)

    faults.register("verify.mid_object", die)
    try:
        message = await err(client, f"VERIFY BACKUP '{backup_id}' WITH ({KEY})", "UNAVAILABLE")
    finally:
        faults.clear()
    how = "crashed (SIGSEGV)" if signum == signal.SIGSEGV else "was killed (SIGKILL"
    assert f"(exit status -{int(signum)}): it {how}" in message, message
    assert "while it read object " in message and f"of backup '{backup_id}'" in message, message
    assert not jobblame.blamed() and not jobblame._deaths
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' WITH ({KEY})"))[0]
    assert report["is_valid"] is True, report


async def test_an_object_damaged_mid_stream_is_the_same_error_to_verify_and_restore(
        client: Any, cairn_config: Config) -> None:
    await fill(client, files=1, rows=40, width=40_000)  # ~1.6 MB stored: two frames
    backup_id = (await rows(client, f"BACKUP DATABASE app TO 'nightly' WITH ({KEY})"))[0][
        "backup_id"]
    objects = Path(cairn_config.backup.roots[0], "nightly", "objects")
    biggest = max(objects.rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    assert biggest.stat().st_size > HEADER_SIZE + FRAME + TAG + 100
    data = bytearray(biggest.read_bytes())
    data[HEADER_SIZE + FRAME + TAG + 100] ^= 1  # in the second frame
    biggest.write_bytes(bytes(data))
    report = (await rows(client, f"VERIFY BACKUP '{backup_id}' WITH ({KEY})"))[0]
    assert report["is_valid"] is False, report
    (error,) = report["errors"]
    assert "frame 1 does not authenticate" in error, error
    message = await err(client, f"RESTORE DATABASE app FROM 'nightly' AS copy WITH "
                                f"(backup_id = '{backup_id}', {KEY})", "BACKUP_INVALID")
    assert error in message, (error, message)
