"""Attacks on a VERIFY's or a RESTORE's job process at points of its work:
killed (SIGKILL: the OOM killer, kill -9), crashed once (SIGSEGV), or its
socket to the server shut. Each outcome is the right answer or a clear 503
that blames no sound file (a 503 names the object a VERIFY read), and the
statement run again succeeds. (The same with the process refused memory:
test_job_process_short_memory.py.)"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

import pytest

from server import faults
from storage import jobblame, jobproc
from tests.e2e.test_job_process_crashing_file import (  # noqa: F401 (its fixtures)
    cairn_config,
    fresh_counts,
)
from tests.helpers import fill, rows, sql

KEY = "encryption_passphrase = 'correct horse'"


def _attack(how: str) -> None:
    with jobproc._guard:
        procs = list(jobproc._busy)
    for proc in procs:
        if how == "shut":
            sock = socket.socket(fileno=os.dup(proc.conn.fileno()))
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()
        else:
            os.kill(proc.pid, signal.SIGKILL if how == "kill" else signal.SIGSEGV)


POINTS = {"verify": ["verify.mid_object", "check.reading"],
          "restore": ["restore.check_file", "check.reading"]}


@pytest.mark.parametrize("how", ["kill", "crash", "shut"])
@pytest.mark.parametrize("kind", ["verify", "restore"])
async def test_an_attacked_job_process_blames_no_sound_file(
        client: Any, kind: str, how: str) -> None:
    await fill(client, files=3, rows=30, width=3000)
    backup_id = (await rows(client, f"BACKUP DATABASE app TO 'nightly' WITH ({KEY})"))[0][
        "backup_id"]
    text = (f"VERIFY BACKUP '{backup_id}' WITH ({KEY})" if kind == "verify" else
            f"RESTORE DATABASE app FROM 'nightly' AS copy WITH (backup_id = '{backup_id}', "
            f"{KEY}, replace = true)")
    outcomes = []
    for point in POINTS[kind]:
        for nth in (1, 2, 3):
            seen = [0]

            def hit(info: dict[str, Any], nth: int = nth, seen: list[int] = seen) -> None:
                seen[0] += 1
                if seen[0] == nth:
                    _attack(how)

            faults.register(point, hit)
            try:
                status, body = await sql(client, text)
            finally:
                faults.clear()
            outcomes.append((point, nth, status, str(body)[:300]))
            assert status in (200, 503), outcomes[-1]
            if status == 503:
                message = body["error"]["message"]
                assert message.startswith("the job process ended"), outcomes[-1]
                if point == "verify.mid_object" and nth < 3:  # (the 3rd: between objects)
                    assert "while it read object " in message, message
                if point == "restore.check_file":
                    assert "while it read file " in message and "to check)" in message, message
            if status == 200 and kind == "verify":
                assert body["results"][0]["rows"][0]["is_valid"] is True, outcomes[-1]
            assert not jobblame.blamed(), outcomes[-1]
            status, body = await sql(client, text)  # run again: it passes
            assert status == 200, (point, nth, body)
            if kind == "verify":
                assert body["results"][0]["rows"][0]["is_valid"] is True, body
            else:
                assert (await rows(client, "SELECT count(*) AS n FROM copy.blobs"))[0]["n"] == 90
    # A file's read attacked (check.reading) is read again at once: the right answer.
    assert all(status == 200 for point, _, status, _ in outcomes if point == "check.reading"), \
        outcomes
