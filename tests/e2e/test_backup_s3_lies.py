"""An S3 target that lies (s3liar.py, in front of a real moto server): a
manifest LISTed but "not found" when read, a manifest write acknowledged but
not stored as written, a LIST naming a key that is not UTF-8. None may cost
another backup its objects, report a backup that is not stored, or answer
500."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from server import faults
from server.app import create_app
from server.config import Config
from storage.backup import scan
from tests.archive.test_archiving import wait_shipped
from tests.helpers import ok, rows, sql
from tests.storage_backup.s3liar import Liar, Rule
from tests.storage_backup.s3server import S3Server, running


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    yield from running()


@pytest.fixture
def liar(s3: S3Server) -> Iterator[Liar]:
    proxy = Liar(s3.port)
    yield proxy
    proxy.close()


@pytest.fixture
async def client(aiohttp_client: Any, cairn_config: Config, s3: S3Server, liar: Liar) -> Any:
    target = s3.target(s3.new_bucket(), "c")
    cairn_config.backup.targets = {"lie": {**target, "endpoint": liar.endpoint}}
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t")
    return client


async def _backup(client: Any, text: str = "BACKUP DATABASE app TO 'lie'") -> str:
    return str((await ok(client, text))[0]["rows"][0]["backup_id"])


async def _valid(client: Any, backup_id: str) -> bool:
    row = (await ok(client, f"VERIFY BACKUP '{backup_id}' IN 'lie'"))[0]["rows"][0]
    return bool(row["is_valid"])


async def test_a_manifest_listed_but_not_found_keeps_its_objects_from_a_drop(
    client: Any, liar: Liar
) -> None:
    a = await _backup(client)
    b = await _backup(client)  # the same files: every object is A's and B's
    liar.rules = [Rule("HEAD", f"/manifests/{b}", "missing"),
                  Rule("GET", f"/manifests/{b}", "missing")]
    status, body = await sql(client, f"DROP BACKUP '{a}' IN 'lie'")
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert b in body["error"]["message"] and "not found" in body["error"]["message"], body
    # keep_last after a BACKUP: the same refusal, nothing dropped
    status, body = await sql(client, "BACKUP DATABASE app TO 'lie' WITH (keep_last = 1)")
    assert status == 503 and b in body["error"]["message"], body
    # B itself: not there now, not gone (its catalog record stays)
    for text in (f"VERIFY BACKUP '{b}' IN 'lie'", f"DROP BACKUP '{b}' IN 'lie'",
                 f"DROP BACKUP IF EXISTS '{b}' IN 'lie'"):
        status, body = await sql(client, text)
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), (text, body)
    shown = (await ok(client, "SHOW BACKUPS IN 'lie'"))[0]["rows"]
    assert [r["error"] for r in shown if r["backup_id"] == b][0].startswith(
        "backup target"), shown
    liar.rules = []
    assert b in {r["backup_id"] for r in (await ok(client, "SHOW BACKUPS"))[0]["rows"]}
    listed = {r["backup_id"] for r in (await ok(client, "SHOW BACKUPS IN 'lie'"))[0]["rows"]}
    assert {a, b} <= listed
    assert await _valid(client, a) and await _valid(client, b)
    await ok(client, f"RESTORE DATABASE app FROM 'lie' AS cp WITH (backup_id = '{b}')")
    assert (await ok(client, "SELECT count(*) AS n FROM cp.t"))[0]["rows"] == [{"n": 2}]
    # once the target answers again, the drop goes through and B stays whole
    await ok(client, f"DROP BACKUP '{a}' IN 'lie'")
    assert await _valid(client, b)



async def test_objects_a_target_will_not_serve_now_are_no_damage_to_verify(
    client: Any, liar: Liar
) -> None:
    """A store answering 503 SlowDown (or 429) to every object GET: VERIFY called the
    intact backup invalid (`errors` "… cannot be reached", job `completed`,
    `cairn_verify_invalid_total` counted) while a RESTORE of it at the same
    moment was 503 UNAVAILABLE, to be run again. Now VERIFY says what RESTORE
    says, and once the store serves again the backup is valid."""
    backup_id = await _backup(client)
    # 503 SlowDown, and 429 TooManyRequests (how some stores throttle: it was
    # BACKUP_INVALID, VERIFY `is_valid = false`, RESTORE 422, for a sound backup)
    for act in ("slow", "busy"):
        liar.rules = [Rule("GET", "/objects/", act)]
        for text in (f"VERIFY BACKUP '{backup_id}' IN 'lie'",
                     f"RESTORE DATABASE app FROM 'lie' AS cp WITH (backup_id = '{backup_id}')"):
            status, body = await sql(client, text)
            assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), (act, text, body)
            assert "cannot be reached" in body["error"]["message"], body
    liar.rules = []
    jobs = (await ok(client, "SELECT job_type, status FROM system.jobs "
                             "WHERE job_type IN ('verify', 'restore')"))[0]["rows"]
    assert sorted((j["job_type"], j["status"]) for j in jobs) == [
        ("restore", "failed")] * 2 + [("verify", "failed")] * 2, jobs
    metrics = await (await client.get("/metrics")).text()
    assert 'cairn_verify_invalid_total{kind="backup"} 1' not in metrics
    assert await _valid(client, backup_id)



async def test_large_manifests_are_read_within_a_budget_not_sixteen_at_once(
    client: Any, liar: Liar, s3: S3Server, cairn_config: Config, monkeypatch: Any
) -> None:
    """Manifests are read 16 at a time, and a 64 MiB one (the limit) of short
    strings cost the server 2.3 GB while read and parsed: 16 planted ones, ~35
    GB in one SHOW BACKUPS. Past 64 KiB they are read within a byte budget per
    target (by their listed size), and one larger than the listing says (a
    store that lies) alone; each is still listed, as damaged."""
    monkeypatch.setattr(scan, "SCAN_BUDGET", 1 << 20, raising=False)  # 3 of these fit in it
    bucket = cairn_config.backup.targets["lie"]["uri"].split("/")[2]
    junk = b'{"a":[' + b",".join([b'"ab"'] * 60_000) + b"]}\n"  # 300 KB
    await _backup(client)
    for i in range(8):
        s3.write(f"{bucket}/c/manifests/bk-junk{i}.json", junk)
    liar.rules = [Rule("GET", "/manifests/bk-junk", "hold")]
    liar.hold_over = (64 << 10) + 1  # a read past scan.FREE is of a whole one
    rows = (await ok(client, "SHOW BACKUPS IN 'lie'"))[0]["rows"]
    assert sorted(r["backup_id"] for r in rows if r["error"]) == [
        f"bk-junk{i}" for i in range(8)], rows
    assert 1 <= liar.most_held <= 3, liar.most_held
    liar.most_held = 0
    liar.rules = [Rule("GET", "list-type=2", "small"), Rule("GET", "/manifests/bk-junk", "hold")]
    rows = (await ok(client, "SHOW BACKUPS IN 'lie'"))[0]["rows"]
    assert len([r for r in rows if r["error"]]) == 8, rows
    assert liar.most_held == 1


# pyarrow stores a small file as one PUT or as a multipart upload (its parts
# PUT, then a POST that completes it): each lie is told for both.
def _writes(act: str, key: str) -> list[Rule]:
    if act == "drop":
        return [Rule("PUT", f"/{key}[^?]*$", act), Rule("POST", f"/{key}.*uploadId=", act)]
    return [Rule("PUT", f"/{key}[^?]*$", act), Rule("PUT", f"/{key}.*partNumber=", act)]


@pytest.mark.parametrize("act", ["drop", "cut", "flip"])
async def test_a_manifest_acknowledged_but_not_stored_as_written_fails_the_backup(
    client: Any, liar: Liar, act: str
) -> None:
    kept = await _backup(client)
    liar.rules = _writes(act, "manifests/bk-")
    status, body = await sql(client, "BACKUP DATABASE app TO 'lie'")
    liar.rules = []
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert "acknowledged 'manifests/bk-" in body["error"]["message"], body
    assert "does not hold it as written" in body["error"]["message"], body
    jobs = (await ok(client, "SELECT status, error_message FROM system.jobs "
                             "WHERE job_type = 'backup' ORDER BY created_at"))[0]["rows"]
    assert [j["status"] for j in jobs] == ["completed", "failed"], jobs
    assert "does not hold it as written" in jobs[-1]["error_message"], jobs
    rows = (await ok(client, "SHOW BACKUPS IN 'lie'"))[0]["rows"]
    assert [(r["backup_id"], r["error"]) for r in rows] == [(kept, None)]
    assert [r["backup_id"] for r in (await ok(client, "SHOW BACKUPS"))[0]["rows"]] == [kept]
    assert await _valid(client, kept)
    await _backup(client)  # the target answers truly again: a backup lands


async def test_a_key_file_or_config_acknowledged_but_not_stored_fails_the_backup(
    client: Any, liar: Liar
) -> None:
    liar.rules = _writes("drop", "config.json")
    status, body = await sql(client, "BACKUP DATABASE app TO 'lie'")
    assert status == 503 and "acknowledged 'c/config.json'" in body["error"]["message"], body
    liar.rules = _writes("cut", "keys/")
    status, body = await sql(client, "BACKUP DATABASE app TO 'lie' "
                                     "WITH (encryption_passphrase = 'pw-123456789')")
    assert status == 503 and "acknowledged 'keys/" in body["error"]["message"], body
    liar.rules = []
    backup_id = await _backup(client, "BACKUP DATABASE app TO 'lie' "
                                      "WITH (encryption_passphrase = 'pw-123456789')")
    row = (await ok(client, f"VERIFY BACKUP '{backup_id}' IN 'lie' "
                            "WITH (encryption_passphrase = 'pw-123456789')"))[0]["rows"][0]
    assert row["is_valid"] is True, row


@pytest.mark.parametrize(("act", "key", "statement"), [
    ("drop", "locks/bk-", "BACKUP DATABASE app TO 'lie'"),
    ("drop", "prunes/", "DROP BACKUP '{b}' IN 'lie'"),
])
async def test_a_lock_or_prune_marker_acknowledged_but_not_stored_is_refused(
    client: Any, liar: Liar, act: str, key: str, statement: str
) -> None:
    """A lock the store acknowledged and dropped would let a prune take what
    the backup (or restore) relies on, and a dropped prune marker lets a
    backup take a prune for none: each is read back, and one not as written
    is UNAVAILABLE with nothing done."""
    kept = await _backup(client)
    liar.rules = _writes(act, key)
    status, body = await sql(client, statement.format(b=kept))
    liar.rules = []
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert f"acknowledged '{key}" in body["error"]["message"], body
    assert "does not hold it as written" in body["error"]["message"], body
    rows = (await ok(client, "SHOW BACKUPS IN 'lie'"))[0]["rows"]
    assert [r["backup_id"] for r in rows] == [kept], rows
    assert await _valid(client, kept)


@pytest.mark.parametrize(("folder", "statement"), [
    ("manifests", "SHOW BACKUPS IN 'lie'"),
    ("manifests", "RESTORE DATABASE app FROM 'lie' AS cp"),
    ("prunes", "BACKUP DATABASE app TO 'lie'"),
    ("locks", "BACKUP DATABASE app TO 'lie'"),
    ("keys", "BACKUP DATABASE app TO 'lie' WITH (encryption_passphrase = 'pw-123456789')"),
    ("objects", "DROP BACKUP '{b}' IN 'lie'"),
    ("", "DROP BACKUP '{b}' IN 'lie'"),
])
async def test_a_listed_key_that_is_not_utf8_is_not_cairns(
    client: Any, liar: Liar, folder: str, statement: str
) -> None:
    backup_id = await _backup(client)
    prefix = f"c%2F{folder}%2F" if folder else "c%2F"
    liar.rules = [Rule("GET", f"prefix={prefix}(&|$)", "inject", [b"bk-\xff\xfe.json"])]
    await ok(client, statement.format(b=backup_id))


async def test_a_manifest_listed_but_not_found_after_the_backup_is_not_taken_for_a_drop(
    client: Any, liar: Liar
) -> None:
    """A manifest read back once written, then "not found" (a HEAD) while the
    target still lists it, was taken for another server's drop: the job
    `completed` saying so, and the catalog forgot the backup."""
    liar.seen.clear()
    await _backup(client)
    heads = sum(line.startswith("HEAD ") and "/manifests/bk-" in line for line in liar.seen)
    # the same BACKUP again: every HEAD of its manifest answered but the last
    liar.rules = [Rule("HEAD", "/manifests/bk-", "missing", skip=heads - 1)]
    status, body = await sql(client, "BACKUP DATABASE app TO 'lie'")
    liar.rules = []
    assert status == 200, body
    backup_id = body["results"][0]["rows"][0]["backup_id"]
    jobs = (await ok(client, "SELECT status, error_message FROM system.jobs "
                             "WHERE job_type = 'backup'"))[0]["rows"]
    assert jobs == [{"status": "completed", "error_message": None}] * 2, jobs
    assert backup_id in {r["backup_id"] for r in (await ok(client, "SHOW BACKUPS"))[0]["rows"]}


async def test_an_archived_segment_acknowledged_but_not_stored_is_shipped_again(
    client: Any, liar: Liar
) -> None:
    await ok(client, "START ARCHIVING DATABASE app TO 'lie' WITH (interval = '100ms')")
    await wait_shipped(client)
    # and a HEAD then answering with its size (a cache in front of the store):
    # it was taken for shipped, its changes trimmed from the log, until its
    # last byte was read too
    liar.rules = [*_writes("drop", "archives/app/"), Rule("HEAD", "/archives/app/", "ghost")]
    await ok(client, "INSERT INTO app.t VALUES (3, 'c')")
    for _ in range(100):
        [row] = await rows(client, "SELECT * FROM system.archives WHERE namespace = 'app'")
        if row["last_error"]:
            break
        await asyncio.sleep(0.05)
    assert "does not hold it as written" in row["last_error"], row
    assert row["lag_ms"] > 0, row  # not taken for shipped
    liar.rules = []
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'lie'"))[0]
    assert report["is_valid"] is True and report["changes"] >= 1, report


async def test_an_object_a_head_says_is_there_is_not_reused_unless_it_is_read(
    client: Any, liar: Liar, s3: S3Server, cairn_config: Config
) -> None:
    """A store answering HEAD with the right size for an object it no longer
    holds: BACKUP took the object for stored (raw objects on S3 are found by
    their size), reused it and said `completed`, and its RESTORE then failed
    with the object missing. An object to reuse is read (its last byte) too:
    one the store cannot serve is stored again, and the backup restores."""
    bucket = cairn_config.backup.targets["lie"]["uri"].split("/")[2]
    first = await _backup(client)
    objects = {k: n for k, n in s3.keys(bucket, "c").items() if k.startswith("objects/")}
    assert objects
    fs = s3.fs()
    for key in objects:
        fs.delete_file(f"{bucket}/c/{key}")
    liar.rules = [Rule("HEAD", f"/c/{key}$", "ghost", size=n) for key, n in objects.items()]
    second = await _backup(client)
    liar.rules = []
    assert await _valid(client, second)
    await ok(client, f"RESTORE DATABASE app FROM 'lie' AS cp WITH (backup_id = '{second}')")
    assert (await ok(client, "SELECT count(*) AS n FROM cp.t"))[0]["rows"] == [{"n": 2}]
    assert await _valid(client, first)  # its objects are stored again too


async def test_keep_last_says_which_manifests_it_could_not_read(
    client: Any, liar: Liar
) -> None:
    """keep_last = 1 while the older backup's manifest cannot be read now (listed,
    "not found" when read; 503 alike, with the SDK's retries): the job
    said `completed`, `dropped: []`, only the log telling that keep_last
    counted nothing it could not read. Its result names them now."""
    older = await _backup(client)
    liar.rules = [Rule("HEAD", f"/manifests/{older}", "missing"),
                  Rule("GET", f"/manifests/{older}", "missing")]
    status, body = await sql(client, "BACKUP DATABASE app TO 'lie' WITH (keep_last = 1)")
    liar.rules = []
    assert status == 200, body
    jobs = (await ok(client, "SELECT status, result FROM system.jobs WHERE job_type = 'backup' "
                             "ORDER BY created_at"))[0]["rows"]
    result = jobs[-1]["result"]
    result = json.loads(result) if isinstance(result, str) else result
    assert jobs[-1]["status"] == "completed" and result["dropped"] == [], jobs
    assert result["not_read"] == [older], result



async def test_a_lock_listed_but_not_found_keeps_its_objects_from_a_drop(
    aiohttp_client: Any, cairn_config: Config, s3: S3Server, liar: Liar
) -> None:
    """A BACKUP reusing A's objects, paused before its manifest, its lock
    listed but "not found" when read: DROP BACKUP A took the lock for gone and
    deleted the objects (bytes_freed 1,130), and the BACKUP failed 422. Now
    the drop is 503 with nothing dropped, and the BACKUP completes, valid."""
    cairn_config.jobs.job_process = "off"  # the pause below is in this process
    cairn_config.backup.targets = {"lie": {**s3.target(s3.new_bucket(), "c"),
                                           "endpoint": liar.endpoint}}
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t")
    first = await _backup(client)
    gate, reached = threading.Event(), threading.Event()
    faults.register("backup.before_manifest", lambda info: (reached.set(), gate.wait(60)))
    try:
        second = asyncio.ensure_future(sql(client, "BACKUP DATABASE app TO 'lie'"))
        for _ in range(1200):
            if reached.is_set():
                break
            await asyncio.sleep(0.05)
        assert reached.is_set()
        liar.rules = [Rule("GET", "/locks/", "missing"), Rule("HEAD", "/locks/", "missing")]
        status, body = await sql(client, f"DROP BACKUP '{first}' IN 'lie'")
        liar.rules = []
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
        assert "lists the lock 'locks/bk-" in body["error"]["message"], body
    finally:
        faults.clear()
        gate.set()
    status, body = await second
    assert status == 200, body
    assert await _valid(client, body["results"][0]["rows"][0]["backup_id"])
    assert await _valid(client, first)


async def test_restore_without_backup_id_of_a_throttled_newest_manifest_is_unavailable(
    client: Any, liar: Liar
) -> None:
    """The newest manifest answering 503 SlowDown (or 429) to its GET while
    RESTORE without backup_id listed them: RESTORE said 422 BACKUP_INVALID
    ("cannot be read and may be the newest backup"), while VERIFY of it,
    RESTORE by its id and keep_last said 503, to be run again. Now 503 too,
    and once the store serves it RESTORE takes it."""
    await _backup(client)
    newest = await _backup(client)
    # 429 (503 SlowDown alike, with the SDK's slower retries)
    liar.rules = [Rule("GET", f"/manifests/{newest}", "busy")]
    status, body = await sql(client, "RESTORE DATABASE app FROM 'lie' AS cp")
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    message = body["error"]["message"]
    assert newest in message and "nothing was restored" in message, body
    liar.rules = []
    restored = (await ok(client, "RESTORE DATABASE app FROM 'lie' AS cp"))[0]["rows"][0]
    assert restored["backup_id"] == newest, restored
