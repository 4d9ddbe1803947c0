"""An S3 endpoint that answers too slowly to time out (a byte every 0.4 s) or
lists forever holds no statement, no client and no other target: a statement
reading the target answers UNAVAILABLE after `[backup] s3_deadline_seconds`,
a target whose calls are all stuck answers UNAVAILABLE at once, and every
other statement (on an honest target too) goes on. KILL JOB ends a restore
whose read is stuck, at once, and it installs nothing. A real moto server
holds the backups; the lies come from a proxy in front of it (s3stall.py)."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.config import Config
from server.s3calls import SLOTS
from storage.backup import stoppable
from storage.jobproc import KILL_GRACE
from tests.archive.test_archiving import wait_shipped
from tests.helpers import ok, rows, sql
from tests.storage_backup.s3server import S3Server, running
from tests.storage_backup.s3stall import Liar, lying

DEADLINE = 1.5
SKIP_LOCKS = 2  # a DROP BACKUP's listings of locks/ before its manifest goes


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


@pytest.fixture(scope="module")
def liar(s3: S3Server) -> Iterator[Liar]:
    yield from lying(s3)


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config, s3: S3Server, liar: Liar) -> Any:
    return await started(aiohttp_client, cairn_config, s3, liar, "off")


async def started(aiohttp_client: Any, cairn_config: Config, s3: S3Server, liar: Liar,
                  job_process: str) -> Any:
    cairn_config.backup.targets = {
        "lie": {**s3.target(s3.new_bucket(), "c"), "endpoint": liar.endpoint},
        "honest": s3.target(s3.new_bucket(), "h"),
    }
    cairn_config.backup.s3_deadline_seconds = DEADLINE
    cairn_config.jobs.job_process = job_process
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t SELECT i, 'v' || i FROM range(200) r(i); FLUSH TABLE app.t")
    return client


async def timed(client: Any, text: str, limit: float = 20.0) -> tuple[int, dict[str, Any], float]:
    """`sql`, and how long it took; a test failure (not a hang) past `limit`."""
    start = time.monotonic()
    status, body = await asyncio.wait_for(sql(client, text), limit)
    return status, body, time.monotonic() - start


async def test_a_dripping_target_answers_unavailable_and_stalls_nothing_else(
    client: Any, liar: Liar,
) -> None:
    await ok(client, "BACKUP DATABASE app TO 'lie'; BACKUP DATABASE app TO 'honest'")
    liar.lie("GET", "manifests/bk-", "drip", 0.4)
    try:
        status, body, took = await timed(client, "SHOW BACKUPS IN 'lie'")
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
        assert "did not answer within 1.5 s" in body["error"]["message"], body
        assert took < DEADLINE + 2, took
        # More of them than the blocking threads and the target's slots: each
        # answers within its deadline, those past the slots at once.
        many = await asyncio.gather(*(timed(client, "SHOW BACKUPS IN 'lie'")
                                      for _ in range(2 * SLOTS + 8)))
        assert {(s, b["error"]["code"]) for s, b, _ in many} == {(503, "UNAVAILABLE")}, many
        assert max(t for _, _, t in many) < DEADLINE + 3, [t for _, _, t in many]
        status, body, took = await timed(client, "SHOW BACKUPS IN 'lie'")
        assert "is not answering" in body["error"]["message"], body
        assert took < 1.0, took
        # Other clients, and another target, are not held by it.
        status, body, took = await timed(client, "SELECT count(*) AS n FROM app.t", 5)
        assert (status, body["results"][0]["rows"]) == (200, [{"n": 200}]), body
        status, body, took = await timed(client, "SHOW BACKUPS IN 'honest'", 10)
        assert status == 200 and len(body["results"][0]["rows"]) == 1, body
        assert took < DEADLINE, took
        status, body, _ = await timed(client, "BACKUP DATABASE app TO 'honest'", 15)
        assert status == 200, body
    finally:
        liar.release()


@pytest.mark.parametrize("text", [
    "SHOW BACKUP '{b}' IN 'lie'",
    "ATTACH BACKUPS FROM 'lie'",
    "SHOW RESTORE POINTS FOR DATABASE app IN 'lie'",
    "RESTORE DATABASE app FROM 'lie' AS cp",
])
async def test_every_statement_reading_a_dripping_target_answers_in_time(
    client: Any, liar: Liar, text: str,
) -> None:
    backup_id = (await ok(client, "BACKUP DATABASE app TO 'lie'"))[0]["rows"][0]["backup_id"]
    liar.lie("GET", "/", "drip", 0.4)  # every answer with a body: listings, manifests
    try:
        status, body, took = await timed(client, text.format(b=backup_id))
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
        assert took < DEADLINE + 2, took
    finally:
        liar.release()


async def test_a_listing_that_never_ends_answers_unavailable(client: Any, liar: Liar) -> None:
    await ok(client, "BACKUP DATABASE app TO 'lie'")
    liar.lie("GET", r"prefix=c%2Fmanifests%2F(&|$)", "list_loop")
    try:
        status, body, took = await timed(client, "SHOW BACKUPS IN 'lie'")
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
        assert took < DEADLINE + 2, took
        assert liar.hits.get("list_loop", 0) > 1  # it did loop
    finally:
        liar.release()


@pytest.mark.parametrize("stuck", ["manifests/bk-", "objects/"])
async def test_kill_job_ends_a_restore_whose_read_is_stuck(
    client: Any, liar: Liar, stuck: str,
) -> None:
    backup_id = (await ok(client, "BACKUP DATABASE app TO 'lie'"))[0]["rows"][0]["backup_id"]
    liar.lie("GET", stuck, "drip", 0.4)
    try:
        restore = asyncio.ensure_future(timed(
            client, f"RESTORE DATABASE app FROM 'lie' AS cp WITH (backup_id = '{backup_id}')",
            30))
        for _ in range(100):
            jobs = (await ok(client, "SELECT job_id FROM system.jobs WHERE status = 'running' "
                                     "AND job_type = 'restore'"))[0]["rows"]
            if jobs and liar.hits.get("drip"):
                break
            await asyncio.sleep(0.1)
        assert jobs, "the restore did not start reading"
        job_id = jobs[0]["job_id"]
        await ok(client, f"KILL JOB '{job_id}'")
        killed = time.monotonic()
        status, body, _ = await restore
        assert time.monotonic() - killed < 3.0
        assert (status, body["error"]["code"]) == (409, "CANCELLED"), body
        job = (await ok(client, f"SELECT status FROM system.jobs WHERE job_id = '{job_id}'"))
        assert job[0]["rows"] == [{"status": "cancelled"}]
        names = (await ok(client, "SHOW NAMESPACES"))[0]["rows"]
        assert "cp" not in {r["namespace"] for r in names}, names
    finally:
        liar.release()


async def test_kill_job_ends_a_backup_whose_listing_never_ends(
    aiohttp_client: Any, cairn_config: Config, s3: S3Server, liar: Liar,
) -> None:
    """The job process, stuck listing prunes/, is killed KILL_GRACE after the
    KILL; the clean-up after it (in the server: that listing again) no longer
    keeps the job running until the endpoint relents."""
    client = await started(aiohttp_client, cairn_config, s3, liar, "nice")
    await ok(client, "BACKUP DATABASE app TO 'lie'")
    liar.lie("GET", r"prefix=c%2Fprunes%2F(&|$)", "list_loop")
    try:
        backup = asyncio.ensure_future(timed(client, "BACKUP DATABASE app TO 'lie'", 40))
        for _ in range(100):
            jobs = (await ok(client, "SELECT job_id FROM system.jobs WHERE status = 'running' "
                                     "AND job_type = 'backup'"))[0]["rows"]
            if jobs and liar.hits.get("list_loop"):
                break
            await asyncio.sleep(0.1)
        assert jobs and liar.hits.get("list_loop"), "the backup did not start listing"
        job_id = jobs[0]["job_id"]
        await ok(client, f"KILL JOB '{job_id}'")
        killed = time.monotonic()
        status, body, _ = await backup
        assert time.monotonic() - killed < KILL_GRACE + 4
        assert (status, body["error"]["code"]) == (409, "CANCELLED"), body
        job = await ok(client, f"SELECT status FROM system.jobs WHERE job_id = '{job_id}'")
        assert job[0]["rows"] == [{"status": "cancelled"}]
    finally:
        liar.release()


@pytest.mark.parametrize(("statement", "job_type", "method", "pattern", "act", "skip"), [
    # a BACKUP settling its lock (listing prunes/), and one reading its manifest back
    ("BACKUP DATABASE app TO 'lie'", "backup", "GET", r"prefix=c%2Fprunes%2F(&|$)",
     "list_loop", 0),
    ("BACKUP DATABASE app TO 'lie'", "backup", "GET", "manifests/bk-", "drip", 0),
    ("BACKUP ALL TO 'lie'", "backup", "GET", "manifests/bk-", "drip", 0),  # always here
    ("VERIFY BACKUP '{b}' IN 'lie'", "verify", "GET", "objects/", "drip", 0),
    # a DROP BACKUP reading the locks once its manifest went
    ("DROP BACKUP '{b}' IN 'lie'", "drop_backup", "GET", r"prefix=c%2Flocks%2F(&|$)",
     "list_loop", SKIP_LOCKS),
])
async def test_kill_job_ends_a_job_stuck_on_the_target_in_the_server(
    client: Any, cairn_config: Config, s3: S3Server, liar: Liar, statement: str,
    job_type: str, method: str, pattern: str, act: str, skip: int,
) -> None:
    """With job processes off (so too a throttled BACKUP) the
    job's call ran on its own thread and KILL JOB waited for the target as
    long as it held the call. Now the job ends cancelled at once; the call
    left running, once the target lets it end, leaves nothing half-done: no
    manifest of the killed backup, no lock, no object it alone wrote, and a
    dropped backup forgotten by the catalog too."""
    kept = (await ok(client, "BACKUP DATABASE app TO 'lie'"))[0]["rows"][0]["backup_id"]
    # Calls of earlier tests abandoned on their (closed) event loops stay counted.
    before = stoppable.left_running()
    bucket, prefix = cairn_config.backup.targets["lie"]["uri"][5:].split("/", 1)
    objects = {k for k in s3.keys(bucket, prefix) if k.startswith("objects/")}
    liar.lie(method, pattern, act, 0.4, skip=skip)
    try:
        stuck = asyncio.ensure_future(timed(client, statement.format(b=kept), 30))
        for _ in range(100):
            jobs = (await ok(client, "SELECT job_id FROM system.jobs WHERE status = 'running' "
                                     f"AND job_type = '{job_type}'"))[0]["rows"]
            if jobs and liar.hits.get(act):
                break
            await asyncio.sleep(0.05)
        assert jobs and liar.hits.get(act), "the job did not reach the stuck call"
        job_id = jobs[0]["job_id"]
        await ok(client, f"KILL JOB '{job_id}'")
        killed = time.monotonic()
        status, body, _ = await stuck
        assert time.monotonic() - killed < 3.0
        assert (status, body["error"]["code"]) == (409, "CANCELLED"), body
        job = await ok(client, f"SELECT status FROM system.jobs WHERE job_id = '{job_id}'")
        assert job[0]["rows"] == [{"status": "cancelled"}]
    finally:
        liar.release()
    def leftovers() -> list[str]:
        return [k for k in s3.keys(bucket, prefix) if k.startswith(("locks/", "prunes/", "tmp/"))]

    for _ in range(100):  # the call left running ends once the target answers
        if stoppable.left_running() <= before and not leftovers():
            break
        await asyncio.sleep(0.1)
    assert stoppable.left_running() <= before
    assert not leftovers(), leftovers()
    held = s3.keys(bucket, prefix)
    listed = [r["backup_id"] for r in (await ok(client, "SHOW BACKUPS IN 'lie'"))[0]["rows"]]
    known = [r["backup_id"] for r in (await ok(client, "SHOW BACKUPS"))[0]["rows"]]
    if skip:  # the drop had removed the manifest: the catalog forgets the backup too
        assert listed == known == [], (listed, known)
    else:
        assert listed == known == [kept], (listed, known)
        assert {k for k in held if k.startswith("objects/")} == objects


class _Sink(http.server.BaseHTTPRequestHandler):
    """Another host's answer to whatever is redirected to it: 200, an ETag, nothing kept."""

    disable_nagle_algorithm = True  # TCP_NODELAY (tests/storage_backup/s3liar.py)

    def _take(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(200)
        self.send_header("ETag", '"x"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _take

    def log_message(self, *args: Any) -> None:
        pass


async def test_an_upload_redirected_elsewhere_is_unavailable_not_a_bad_statement(
    client: Any, liar: Liar,
) -> None:
    """The SDK follows a redirect (pyarrow cannot turn that off): the parts of
    an upload went to another port and the store then did not have them. That
    is the target failing the write (UNAVAILABLE, saying so), not the
    statement's fault (it was INVALID_ARGUMENT)."""
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    liar.lie("PUT", r"tmp/.*partNumber", "redirect",
             location=f"http://127.0.0.1:{sink.server_address[1]}/elsewhere")
    try:
        status, body, _ = await timed(client, "BACKUP DATABASE app TO 'lie'")
        assert liar.hits.get("redirect"), "no part was redirected"
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
        assert "did not keep" in body["error"]["message"], body
    finally:
        liar.release()
        sink.shutdown()
        sink.server_close()



async def test_stop_archiving_answers_while_the_target_drips_a_segment_write(
    client: Any, liar: Liar,
) -> None:
    """A segment's write the store answers a byte at a time held the archive's
    cycle, hence its lock, for good: STOP ARCHIVING never answered, and SHOW
    ARCHIVES said `running`, no `last_error`, while nothing shipped. The write
    is waited for s3_deadline_seconds: the cycle fails saying so, STOP stops
    the archive and says what it could not ship."""
    await ok(client, "START ARCHIVING DATABASE app TO 'lie' WITH (interval = '100ms')")
    await wait_shipped(client, timeout=60)
    liar.lie("POST", r"/archives/.*uploadId=", "drip", 0.4)  # the upload's completion
    try:
        await ok(client, "INSERT INTO app.t VALUES (1000, 'late')")
        loop = asyncio.get_running_loop()
        end = loop.time() + 60
        while (row := (await rows(client, "SELECT * FROM system.archives"))[0])[
                "status"] != "failed":
            assert loop.time() < end, row
            await asyncio.sleep(0.1)
        assert liar.hits.get("drip") and "s3_deadline_seconds" in row["last_error"], row
        status, body, _ = await timed(client, "STOP ARCHIVING DATABASE app", limit=60)
        assert status == 200, body
        row = body["results"][0]["rows"][0]
        assert row["status"] == "stopped", row
        assert row["last_error"].startswith("stopped before every change was shipped"), row
    finally:
        liar.release()


def test_sigterm_stops_the_server_past_a_call_it_gave_up_on(
    server_process: Any, tmp_path: Path, s3: S3Server, liar: Liar,
) -> None:
    """pyarrow's exit handler waits for every S3 request in the process: a
    SHOW BACKUPS given up on, still reading a dripped manifest, kept `cairn
    serve` from ending on SIGTERM for as long as the endpoint dripped."""
    lie = {**s3.target(s3.new_bucket(), "c"), "endpoint": liar.endpoint}
    config = tmp_path / "cairn.toml"
    config.write_text(f"[backup]\ns3_deadline_seconds = {DEADLINE}\n[backup.targets.lie]\n"
                      + "".join(f'{k} = "{v}"\n' for k, v in lie.items()))
    server = server_process(config=config)
    try:
        assert server.post("CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY);"
                           "INSERT INTO app.t VALUES (1); BACKUP DATABASE app TO 'lie'")[0] == 200
        liar.lie("GET", "manifests/bk-", "drip", 0.4)
        status, body = server.post("SHOW BACKUPS IN 'lie'")
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
        assert liar.hits.get("drip")
        start = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - start < 15
        assert "exiting without waiting for them" in server.log()
    finally:
        liar.release()
