"""A file that crashes the job process reading it each time (a crafted
Parquet file that makes a reader segfault or abort): VERIFY says invalid
naming it, RESTORE refuses it BACKUP_INVALID, and they agree
(storage/jobblame.py, storage/backup/crash_marks.py). A process killed
(SIGKILL: the OOM killer for a valid file's memory) is no damage: 503.
Simulated with the fault point met just before a file's contents are read,
which sends the job process the signal such a file would end it with."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest

from catalog.errors import Unavailable
from server import faults
from server.config import Config
from storage import jobblame, jobproc
from tests.archive.test_archiving import FAST, wait_shipped
from tests.helpers import err, fill, ok, rows, state


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    cairn_config.jobs.job_process = "nice"  # not starved by the suite's other worker
    return cairn_config


@pytest.fixture(autouse=True)
def fresh_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobblame, "_deaths", {})
    monkeypatch.setattr(jobblame, "_firsts", set(), raising=False)


class Crasher:
    """At `check.reading`: ends the job process with `signum` when it reads
    the file `sha` (`times` times at most; None: every time)."""

    def __init__(self, signum: int = signal.SIGSEGV) -> None:
        self.signum = signum
        self.sha = ""
        self.also: set[str] = set()  # more files it crashes on each time
        self.times: int | None = None
        self.kills = 0
        self.read: list[str] = []
        self.then_fail = False  # past `times`: the read fails (503), no crash
        self.cairn: Any = None  # then the VERIFY's bytes_done at each read, in `done`
        self.done: list[int] = []

    def __call__(self, info: dict[str, Any]) -> None:
        self.read.append(info["key"])
        if self.cairn is not None:
            self.done += [j.bytes_done for j in self.cairn.jobs.live() if j.job_type == "verify"]
        if self.then_fail and info["key"].endswith("/" + self.sha) and self.kills == self.times:
            raise Unavailable("the target did not answer")
        if info["key"].rsplit("/", 1)[1] in self.also or info["key"].endswith(
                "/" + self.sha) and (self.times is None or self.kills < self.times):
            self.kills += 1
            for pid in jobproc.busy():
                os.kill(pid, self.signum)


async def test_a_file_that_kills_its_job_process_each_time_is_invalid_in_verify_and_restore(
        client: Any) -> None:
    await fill(client, files=2, rows=20)
    first = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
    await fill(client, files=1, rows=20, start=1000)
    second = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
    crash = Crasher()
    faults.register("check.reading", crash)
    try:
        report = (await rows(client, f"VERIFY BACKUP '{first}'"))[0]
        assert report["is_valid"] is True and len(crash.read) == 2, (report, crash.read)
        crash.sha = crash.read[1].rsplit("/", 1)[1]

        # Crashed once, then the read again failed another way (503): the
        # count of 1 goes with its call. It outlived it until 2026-12-07, and
        # the one passing crash below then blamed this sound file (invalid).
        crash.times, crash.then_fail = 1, True
        assert "did not answer" in await err(client, f"VERIFY BACKUP '{first}'", "UNAVAILABLE")
        assert crash.kills == 1
        crash.kills, crash.then_fail = 0, False

        # Crashed once on the file (a passing fault): the check is run
        # again, reads it through, and the backup is valid. Its progress
        # goes on from where the crash left it (it fell back to the start).
        crash.cairn = state(client)
        report = (await rows(client, f"VERIFY BACKUP '{first}'"))[0]
        assert report["is_valid"] is True and crash.kills == 1, report
        assert len(crash.done) == 4 and crash.done == sorted(crash.done), crash.done
        crash.cairn = None

        # Crashed each time the file is read: RESTORE refuses it, naming it
        # (and leaves nothing); VERIFY agrees at once, without reading it
        # again (the other way round: the VERIFY ARCHIVE test below).
        crash.times, crash.kills = None, 0
        message = await err(client, f"RESTORE DATABASE app FROM 'nightly' AS copy1 "
                                     f"WITH (backup_id = '{first}')", "BACKUP_INVALID")
        assert crash.sha in message and "job process" in message, message
        assert crash.kills == jobblame.BLAME_AFTER, crash.kills
        assert not await rows(client, "SELECT namespace FROM system.namespaces "
                                      "WHERE namespace = 'copy1'")
        report = (await rows(client, f"VERIFY BACKUP '{first}'"))[0]
        assert report["is_valid"] is False, report
        (error,) = report["errors"]
        assert error == message and crash.kills == jobblame.BLAME_AFTER, (error, message)
        # Two files crash each time (the one blamed in `first` among them: it
        # counts apart in another backup), VERIFY first: it names both (it
        # gave up after 4 deaths, 503, where RESTORE said BACKUP_INVALID), and
        # RESTORE agrees at once.
        crash.also = {k.rsplit("/", 1)[1] for k in crash.read[:2]}
        crash.sha, crash.kills = "", 0
        report = (await rows(client, f"VERIFY BACKUP '{second}'"))[0]
        assert report["is_valid"] is False and len(report["errors"]) == 2, report
        assert crash.kills == 2 * jobblame.BLAME_AFTER, crash.kills
        assert await err(client, f"RESTORE DATABASE app FROM 'nightly' AS copy2 WITH "
                                 f"(backup_id = '{second}')", "BACKUP_INVALID") in report["errors"]
        assert crash.kills == 2 * jobblame.BLAME_AFTER, crash.kills
    finally:
        faults.clear()
    # The fault gone (a restart forgets the counts too): the backups are whole.
    jobblame._deaths.clear()
    assert (await rows(client, f"VERIFY BACKUP '{first}'"))[0]["is_valid"] is True
    await ok(client, f"RESTORE DATABASE app FROM 'nightly' AS copy3 WITH (backup_id = '{second}')")
    assert (await rows(client, "SELECT count(*) AS n FROM copy3.blobs"))[0]["n"] == 60


async def test_a_sound_file_read_after_one_that_damages_the_readers_is_not_blamed(
        client: Any) -> None:
    """A file the readers take through but that leaves their memory damaged
    (a write out of bounds) makes the process crash in the next file read,
    each time in the same order: that sound file was blamed (VERIFY invalid,
    RESTORE BACKUP_INVALID naming it). Only a crash of a process that read
    no other file before counts; the file is read first in the next one."""
    await fill(client, files=2, rows=20)
    first = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
    order: list[str] = []
    faults.register("check.reading", lambda info: order.append(info["key"]))
    seen: dict[int, list[str]] = {}
    kills = 0

    def after_the_culprit(info: dict[str, Any]) -> None:
        nonlocal kills
        (pid,) = jobproc.busy()
        if order[0] in seen.setdefault(pid, []):
            kills += 1
            os.kill(pid, signal.SIGSEGV)
        seen[pid].append(info["key"])

    try:
        assert (await rows(client, f"VERIFY BACKUP '{first}'"))[0]["is_valid"] is True
        assert len(order) == 2, order
        faults.register("check.reading", after_the_culprit)
        report = (await rows(client, f"VERIFY BACKUP '{first}'"))[0]
        assert report["is_valid"] is True and kills == 1, (report, kills)
        # The RESTORE's check runs in the process that read the culprit last:
        # it crashes in the first file it reads (either one, by the restore's
        # order), then, when that was the culprit, in the sound one after it.
        await ok(client, f"RESTORE DATABASE app FROM 'nightly' AS copy1 "
                         f"WITH (backup_id = '{first}')")
        assert kills in (2, 3) and not jobblame._deaths, (kills, jobblame._deaths)
    finally:
        faults.clear()


async def test_a_throttled_verify_reads_in_a_job_process_at_its_rate(client: Any) -> None:
    """A throttled VERIFY read the files in the server (the rate was the
    server's): a file that crashes the Parquet readers ended the server,
    where an unthrottled VERIFY and every RESTORE reported it."""
    await fill(client, files=1, rows=20)
    first = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
    size = (await rows(client, f"VERIFY BACKUP '{first}'"))[0]["bytes_checked"]
    state(client).config.backup.throttle_bytes_per_second = size * 2  # ~0.5 s, a burst less
    busy: list[list[int]] = []
    faults.register("check.reading", lambda info: busy.append(jobproc.busy()))
    try:
        started = time.monotonic()
        report = (await rows(client, f"VERIFY BACKUP '{first}'"))[0]
        assert report["is_valid"] is True and report["bytes_checked"] == size, report
        assert time.monotonic() - started >= 0.35
        assert len(busy) == 1 and len(busy[0]) == 1 and os.getpid() not in busy[0], busy
    finally:
        faults.clear()


async def test_a_file_whose_job_process_is_killed_each_time_is_unavailable_not_invalid(
        client: Any) -> None:
    """SIGKILL is the OOM killer's (or an operator's): a valid file may need
    more memory than the machine has, so it is never called damaged."""
    await fill(client, files=1, rows=20)
    first = (await rows(client, "BACKUP DATABASE app TO 'nightly'"))[0]["backup_id"]
    crash = Crasher(signal.SIGKILL)
    faults.register("check.reading", crash)
    try:
        assert (await rows(client, f"VERIFY BACKUP '{first}'"))[0]["is_valid"] is True
        crash.sha = crash.read[0].rsplit("/", 1)[1]
        for statement in (f"VERIFY BACKUP '{first}'",
                          f"RESTORE DATABASE app FROM 'nightly' AS copy1 "
                          f"WITH (backup_id = '{first}')"):
            crash.kills = 0
            message = await err(client, statement, "UNAVAILABLE")
            assert crash.sha in message and "killed" in message, message
            assert crash.kills == 2, crash.kills  # read again once, then 503
        assert not jobblame.blamed()
    finally:
        faults.clear()
    assert (await rows(client, f"VERIFY BACKUP '{first}'"))[0]["is_valid"] is True


async def test_verify_archive_reads_its_bases_in_a_job_process_and_agrees_with_restore(
        client: Any) -> None:
    """VERIFY ARCHIVE read its bases' files in the server: a file that
    crashed the Parquet readers ended the server (its memory was the
    server's), where a RESTORE as_of's check of it ended a job process."""
    await fill(client, files=1, rows=20)
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.blobs VALUES (5000, 'late')")
    [now] = await rows(client, "SELECT strftime(now(), '%Y-%m-%dT%H:%M:%S.%fZ') AS t")
    await wait_shipped(client, timeout=60)
    await ok(client, "STOP ARCHIVING DATABASE app")
    crash = Crasher()
    faults.register("check.reading", crash)
    try:
        busy: list[list[int]] = []
        faults.register("check.reading", lambda info: (busy.append(jobproc.busy()),
                                                       crash(info)))
        report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
        assert report["is_valid"] is True, report
        assert busy and all(len(pids) == 1 and os.getpid() not in pids for pids in busy)
        crash.sha = crash.read[0].rsplit("/", 1)[1]
        report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
        assert report["is_valid"] is False and crash.kills == jobblame.BLAME_AFTER, report
        assert crash.sha in json.dumps(report["errors"]) and "job process" in json.dumps(
            report["errors"]), report
        message = await err(client, f"RESTORE DATABASE app FROM 'arch' AS copy1 "
                                     f"WITH (as_of = '{now['t']}')", "BACKUP_INVALID")
        assert crash.sha in message and crash.kills == jobblame.BLAME_AFTER, message
    finally:
        faults.clear()
