"""PAUSE JOB of a restore to a time parks both its threads (the base's copy
and the replay of archived changes beside it): the job gives back the one
place it holds in the `[jobs] max_concurrent` pool, and RESUME takes one back.
Before, the first thread to park gave the place back and both took one on
RESUME: each pause leaked a place for good, and with none left the restore
stayed `running` and every later job `queued` for ever.

Both threads are parked exactly: the copy by a `Gate` at its fault point, the
replay by a gate before it reads its first segment; PAUSE JOB is sent while
both wait there, and then both meet its check."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from server import faults
from server.app import create_app
from server.config import Config
from storage.archive import pitr
from tests.helpers import Gate, fill, job_row, ok, rows, sql, state, wait_job

from .test_restore_beside import archived_end


@pytest.fixture(autouse=True)
def no_faults() -> Iterator[None]:
    yield
    faults.clear()


def parked() -> int:
    """Threads waiting in a job's pause now (JobContext._paused)."""
    return sum(1 for frame in sys._current_frames().values()
               if any(f.f_code.co_name == "_paused" and f.f_code.co_filename.endswith(
                   "jobcontext.py") for f in _stack(frame)))


def _stack(frame: Any) -> Iterator[Any]:
    while frame is not None:
        yield frame
        frame = frame.f_back


async def until(what: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout  # seconds under load
    while not what():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


async def both_parked(client: Any, monkeypatch: pytest.MonkeyPatch, end: str) -> str:
    """A restore to `end` (detached) with its copy and its replay parked by a
    PAUSE JOB; its job id."""
    cairn = state(client)
    copy = Gate(cairn, match=lambda info: info["index"] == 1)
    faults.register("restore.before_object", copy)
    replay_at, replay_go = threading.Event(), threading.Event()
    changes = pitr.changes

    def gated(*a: Any, **k: Any) -> Any:  # in the replay's thread, before its first check
        replay_at.set()
        assert replay_go.wait(120)
        yield from changes(*a, **k)

    monkeypatch.setattr(pitr, "changes", gated)
    (job,) = await rows(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH "
                                f"(as_of = '{end}', detached = true)")
    job_id = str(job["job_id"])
    await copy.reach()
    await until(replay_at.is_set)
    pausing = asyncio.create_task(sql(client, f"PAUSE JOB '{job_id}'"))
    await until(lambda: cairn.jobs.pause_requested(job_id))
    copy.opened.set()
    replay_go.set()
    status, body = await pausing
    assert status == 200, body
    assert body["results"][0]["rows"] == [{"job_id": job_id, "status": "paused"}]
    await until(lambda: parked() == 2)
    monkeypatch.setattr(pitr, "changes", changes)
    return job_id


async def test_a_paused_restore_to_a_time_gives_back_and_takes_one_place(
        aiohttp_client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "cairn.jobs")
    cairn_config.jobs.max_concurrent = 1
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=3)
    await fill(client, ns="other", files=1)
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.blobs VALUES (100000, 'archived')")
    end = await archived_end(client)
    for _ in range(2):  # a leak would show at the first; the pool stays whole
        job_id = await both_parked(client, monkeypatch, end)
        # With one place in the pool, this backup runs only because the restore gave it back.
        (backup,) = await rows(client, "BACKUP DATABASE other TO 'nightly'")
        assert backup["status"] == "completed"
        assert (await job_row(client, job_id))["status"] == "paused"
        await ok(client, f"RESUME JOB '{job_id}'")
        # Before, the second thread waited for a second place that never came.
        assert (await wait_job(client, job_id, timeout=60))["status"] == "completed"
        await ok(client, "DROP NAMESPACE r CASCADE")
        said = [r.getMessage() for r in caplog.records if job_id in r.getMessage()]
        assert said.count(f"job {job_id} paused") == 1, said
        assert said.count(f"job {job_id} resumed") == 1, said
    # The pool is whole: a job after the rounds runs at once.
    (backup,) = await rows(client, "BACKUP DATABASE other TO 'nightly'")
    assert backup["status"] == "completed"
    assert await rows(client, "SELECT count(*) AS n FROM app.blobs") == [{"n": 301}]


async def test_a_kill_of_a_restore_paused_in_both_threads_frees_its_place(
        aiohttp_client: Any, cairn_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    cairn_config.jobs.max_concurrent = 1
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=3)
    await fill(client, ns="other", files=1)
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms')")
    await ok(client, "INSERT INTO app.blobs VALUES (100000, 'archived')")
    end = await archived_end(client)
    job_id = await both_parked(client, monkeypatch, end)
    assert await rows(client, f"KILL JOB '{job_id}'") == [{"job_id": job_id,
                                                          "status": "cancelled"}]
    assert parked() == 0
    assert not [n for n in await rows(client, "SHOW NAMESPACES") if n["namespace"] == "r"]
    (backup,) = await rows(client, "BACKUP DATABASE other TO 'nightly'")
    assert backup["status"] == "completed"
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}')")
    assert await rows(client, "SELECT count(*) AS n FROM r.blobs") == [{"n": 301}]
