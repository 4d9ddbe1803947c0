"""VERIFY BACKUP, DROP BACKUP, keep_last, prune against a running backup,
detached jobs (progress, the bounded pool) and job history, end to end over HTTP.

Concurrent jobs are interleaved with fault points (`server.faults`) and
`Gate`s that park a job's thread until the test lets it go."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from catalog import Job, utcnow
from server import faults
from server.app import create_app
from server.config import Config
from storage import jobproc
from storage.backup import prunes as prunes_module
from storage.backup.layout import utc_now
from tests.helpers import Gate, fill, job_row, ok, sql, state, target_files, wait_job


def manifest(root: Path, backup_id: str, target: str = "nightly") -> dict[str, Any]:
    return json.loads((root / target / "manifests" / f"{backup_id}.json").read_text())


def object_path(root: Path, oid: str, target: str = "nightly") -> Path:
    return root / target / "objects" / oid[:2] / oid


async def backup(client: Any, text: str) -> dict[str, Any]:
    return (await ok(client, text))[0]["rows"][0]


async def verify(client: Any, backup_id: str) -> dict[str, Any]:
    return (await ok(client, f"VERIFY BACKUP '{backup_id}'"))[0]["rows"][0]


async def expect(client: Any, text: str, code: str) -> dict[str, Any]:
    _, body = await sql(client, text)
    assert body["status"] == "error" and body["error"]["code"] == code, body
    return body["error"]


# --- VERIFY -------------------------------------------------------------------


async def test_verify_catches_any_flipped_byte_truncation_and_deletion(
    client: Any, tmp_path: Path
) -> None:
    await fill(client, files=3, rows=20)
    await ok(client, "INSERT INTO app.blobs VALUES (1000, 'buffered, not flushed')")
    b = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    root = tmp_path / "backups"
    m = manifest(root, b["backup_id"])
    objects = m["objects"]
    assert len(objects) == 4

    good = await verify(client, b["backup_id"])
    assert good == {"backup_id": b["backup_id"], "is_valid": True, "files_checked": 4,
                    "bytes_checked": sum(o["size"] for o in objects), "errors": []}

    async def damaged(path: Path, change: Any) -> dict[str, Any]:
        original = path.read_bytes()
        try:
            change(path, original)
            return await verify(client, b["backup_id"])
        finally:
            path.write_bytes(original)

    def flip(at: int) -> Any:
        def change(path: Path, data: bytes) -> None:
            flipped = bytearray(data)
            flipped[at % len(data)] ^= 0x01
            path.write_bytes(bytes(flipped))
        return change

    for obj in objects:
        path = object_path(root, obj["oid"])
        for at in (0, obj["size"] // 2, -1):
            report = await damaged(path, flip(at))
            assert report["is_valid"] is False
            # sha256 mismatch, or (zstd-compressed object) a frame that does not decode
            assert len(report["errors"]) == 1, report
            assert report["errors"][0].startswith(f"object {obj['oid']} is corrupt: "), report
            assert report["files_checked"] == 4
        report = await damaged(path, lambda p, d: p.write_bytes(d[:-1]))
        assert report["errors"] == [
            f"object {obj['oid']} is corrupt: size {obj['size'] - 1}, expected {obj['size']}"]

    manifest_path = root / "nightly" / "manifests" / f"{b['backup_id']}.json"
    size = manifest_path.stat().st_size
    for at in sorted({0, 1, size - 1, size - 2, *range(0, size, max(1, size // 25))}):
        report = await damaged(manifest_path, flip(at))
        assert report["is_valid"] is False, at
        assert len(report["errors"]) == 1 and "manifest" in report["errors"][0], report
    report = await damaged(manifest_path, lambda p, d: p.write_bytes(d[: len(d) // 2]))
    assert report["is_valid"] is False and "truncated" in report["errors"][0]

    # Several bad objects at once: every one is named.
    first, second = (object_path(root, o["oid"]) for o in objects[:2])
    first.unlink()
    second.write_bytes(second.read_bytes()[:10])
    report = await verify(client, b["backup_id"])
    assert report["is_valid"] is False and report["files_checked"] == 4
    assert sorted(report["errors"]) == sorted([
        f"object {objects[0]['oid']} is missing",
        f"object {objects[1]['oid']} is corrupt: size 10, expected {objects[1]['size']}",
    ])
    # Each VERIFY was a job, with its report as the result.
    rows = (await ok(client, "SELECT status, result, target, backup_id FROM system.jobs "
                             "WHERE job_type = 'verify' ORDER BY job_id DESC LIMIT 1"))[0]["rows"]
    assert rows[0]["status"] == "completed" and rows[0]["result"] == report
    assert rows[0]["backup_id"] == b["backup_id"] and rows[0]["target"] == str(root / "nightly")
    await expect(client, "VERIFY BACKUP 'bk-nope'", "NOT_FOUND")
    await expect(client, "VERIFY BACKUP 'bk-nope' IN 'nightly'", "NOT_FOUND")


# --- DROP and keep_last ---------------------------------------------------------


async def two_backups_sharing(client: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """b1 = {keep, gone}, b2 = {keep}: table `gone` is dropped between them."""
    await fill(client, table="keep", files=1)
    await fill(client, table="gone", files=1)
    b1 = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    await ok(client, "DROP TABLE app.gone")
    b2 = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    return b1, b2


async def test_drop_backup_frees_exactly_what_no_other_backup_uses(
    client: Any, tmp_path: Path
) -> None:
    root = tmp_path / "backups"
    b1, b2 = await two_backups_sharing(client)
    m1, m2 = manifest(root, b1["backup_id"]), manifest(root, b2["backup_id"])
    in_b2 = {o["oid"] for o in m2["objects"]}
    only1 = [(o["oid"], o["size"]) for o in m1["objects"] if o["oid"] not in in_b2]
    assert len(only1) == 1

    row = (await ok(client, f"DROP BACKUP '{b1['backup_id']}'"))[0]["rows"][0]
    assert row == {"backup_id": b1["backup_id"], "bytes_freed": sum(s for _, s in only1)}
    held = target_files(root / "nightly")
    assert held["manifests"] == {b2["backup_id"]}
    assert held["objects"] == {o["oid"] for o in m2["objects"]}
    assert held["locks"] == held["prunes"] == held["tmp"] == set()
    assert (await verify(client, b2["backup_id"]))["is_valid"]
    listed = (await ok(client, "SELECT backup_id FROM system.backups"))[0]["rows"]
    assert listed == [{"backup_id": b2["backup_id"]}]
    jobs = (await ok(client, "SELECT status, result FROM system.jobs "
                             "WHERE job_type = 'drop_backup'"))[0]["rows"]
    assert jobs == [{"status": "completed", "result": row}]

    await expect(client, f"DROP BACKUP '{b1['backup_id']}'", "NOT_FOUND")
    results = await ok(client, f"DROP BACKUP IF EXISTS '{b1['backup_id']}'")
    assert "does not exist" in results[0]["message"]
    # Dropping the last backup empties the target of objects.
    row = (await ok(client, f"DROP BACKUP '{b2['backup_id']}' IN 'nightly'"))[0]["rows"][0]
    assert row["bytes_freed"] == sum(o["size"] for o in m2["objects"])
    assert target_files(root / "nightly")["objects"] == set()


async def test_keep_last_drops_this_namespaces_oldest_beyond_n(
    client: Any, tmp_path: Path
) -> None:
    root = tmp_path / "backups"
    await fill(client, ns="other", files=1)
    other = await backup(client, "BACKUP DATABASE other TO 'nightly'")
    b1, b2 = await two_backups_sharing(client)
    b3 = await backup(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 2)")
    listed = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]
    assert [r["backup_id"] for r in listed] == [b3["backup_id"], b2["backup_id"],
                                                other["backup_id"]]
    job = (await ok(client, "SELECT result FROM system.jobs WHERE backup_id = "
                            f"'{b3['backup_id']}'"))[0]["rows"][0]
    assert job["result"]["dropped"] == [b1["backup_id"]]
    wanted = set()
    for b in (b2, b3, other):
        wanted |= {o["oid"] for o in manifest(root, b["backup_id"])["objects"]}
    assert target_files(root / "nightly")["objects"] == wanted
    for b in (b2, b3, other):
        assert (await verify(client, b["backup_id"]))["is_valid"]
    catalog = (await ok(client, "SELECT backup_id FROM system.backups ORDER BY backup_id"))
    assert {r["backup_id"] for r in catalog[0]["rows"]} == {
        b2["backup_id"], b3["backup_id"], other["backup_id"]}
    await expect(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 0)",
                 "INVALID_ARGUMENT")


async def test_keep_last_drops_the_oldest_first(client: Any, tmp_path: Path) -> None:
    """Stopped in its prune (here parked; a crash there leaves the same),
    keep_last has kept the newest backups with no gap: before, it dropped the
    newest doomed backup first, so an interrupted keep_last = 1 over b0, b1
    left b0 and removed b1. The doomed manifests now go oldest first, then one
    prune of what they used (one prune a drop reread every manifest each)."""
    await fill(client, files=1)
    b0 = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    await ok(client, "INSERT INTO app.blobs VALUES (-1, 'b1'); FLUSH TABLE app.blobs")
    b1 = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate(state(client))
    faults.register("prune.before_delete", gate)
    running = asyncio.create_task(sql(client, "BACKUP DATABASE app TO 'nightly' "
                                              "WITH (keep_last = 1)"))
    info = await gate.reach()
    assert info["backup_id"] == b0["backup_id"]  # the oldest dropped
    listed = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]
    assert len(listed) == 1 and listed[0]["backup_id"] not in (b0["backup_id"], b1["backup_id"])
    gate.opened.set()
    status, body = await running
    assert status == 200, body
    listed = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]
    assert [r["backup_id"] for r in listed] == [body["results"][0]["rows"][0]["backup_id"]]


async def test_two_keep_lasts_at_once_both_complete(client: Any, tmp_path: Path) -> None:
    """Two BACKUP … keep_last = 1 of one namespace (two schedules, or a manual
    run beside a scheduled one) both past their manifest, then pruning the same
    older backups. Before, the second to reach a backup the first had dropped
    failed: its BACKUP answered NOT_FOUND "backup … does not exist" and its job
    said failed, although its backup had landed."""
    await fill(client, files=1)
    old = [await backup(client, "BACKUP DATABASE app TO 'nightly'") for _ in range(2)]
    parked: list[dict[str, Any]] = []
    go = threading.Event()

    def park(info: dict[str, Any]) -> None:
        parked.append(info)
        go.wait(10)

    faults.register("backup.after_manifest", park)
    text = "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)"
    runs = [asyncio.create_task(sql(client, text)) for _ in range(2)]
    deadline = time.monotonic() + 10
    while len(parked) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    go.set()
    answers = [await r for r in runs]
    assert [status for status, _ in answers] == [200, 200], answers
    made = [body["results"][0]["rows"][0]["backup_id"] for _, body in answers]
    jobs = (await ok(client, "SELECT status, result FROM system.jobs WHERE job_type = 'backup' "
                             "ORDER BY created_at DESC LIMIT 2"))[0]["rows"]
    assert [j["status"] for j in jobs] == ["completed", "completed"]
    dropped = [b for j in jobs for b in j["result"]["dropped"]]
    listed = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]
    kept = [r["backup_id"] for r in listed]
    # Each keep_last skips the other's backup while that one's job has not
    # ended (tests/e2e/test_drop_while_writing.py): both may stay, or the
    # newer by its manifest's time alone, as the two jobs ended.
    assert kept and set(kept) <= set(made)
    other = [b for b in made if b not in kept]
    assert sorted(dropped) == sorted([b["backup_id"] for b in old] + other)  # each once
    catalog = (await ok(client, "SELECT backup_id FROM system.backups"))[0]["rows"]
    assert sorted(r["backup_id"] for r in catalog) == sorted(kept)
    for backup_id in kept:
        assert (await verify(client, backup_id))["is_valid"]


# --- prune against a backup running into the same target -----------------------


async def test_drop_keeps_the_objects_a_running_backup_holds(
    client: Any, tmp_path: Path
) -> None:
    """The running backup has recorded the objects it reuses in its lock: the
    drop frees nothing of them, and the backup completes valid."""
    await fill(client, files=2)
    b1 = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate(state(client))
    faults.register("backup.before_object", gate)
    job = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)"))[0]
    job_id = job["rows"][0]["job_id"]
    await gate.reach()
    row = (await ok(client, f"DROP BACKUP '{b1['backup_id']}'"))[0]["rows"][0]
    assert row["bytes_freed"] == 0
    gate.opened.set()
    done = await wait_job(client, job_id)
    assert done["status"] == "completed", done
    assert done["result"]["bytes_written"] == 0  # every object was reused
    assert (await verify(client, done["backup_id"]))["is_valid"]


async def test_a_backup_waits_for_a_prune_that_has_already_decided(
    client: Any, tmp_path: Path
) -> None:
    """The race the locks alone leave open: the prune has read the locks and
    decided to delete B1's objects; a new backup that would reuse them must not
    find them present and then lose them. It waits for the prune, then writes
    them again."""
    await fill(client, files=2)
    b1 = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    b1_objects = {o["oid"]: o["size"] for o in manifest_objects(tmp_path, b1)}
    decided = Gate(state(client))
    faults.register("prune.before_delete", decided)
    at_object = Gate.signal()
    faults.register("backup.before_object", at_object)

    drop = asyncio.create_task(sql(client, f"DROP BACKUP '{b1['backup_id']}'"))
    info = await decided.reach()
    assert info["oids"] == set(b1_objects)
    job_id = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)"))[
        0]["rows"][0]["job_id"]
    # The backup has taken its snapshot and recorded its lock, and now waits.
    await asyncio.sleep(0.3)
    assert not at_object.reached.is_set()
    assert (await job_row(client, job_id))["status"] == "running"
    decided.opened.set()

    status, body = await drop
    assert status == 200, body
    assert body["results"][0]["rows"][0]["bytes_freed"] == sum(b1_objects.values())
    done = await wait_job(client, job_id)
    assert done["status"] == "completed", done
    assert done["result"]["bytes_written"] == done["result"]["bytes"] > 0  # written anew
    assert (await verify(client, done["backup_id"]))["is_valid"]
    held = target_files(tmp_path / "backups" / "nightly")
    assert held["objects"] == {o["oid"] for o in manifest_objects(tmp_path, done)}
    assert held["prunes"] == held["locks"] == set()


def manifest_objects(tmp_path: Path, b: dict[str, Any]) -> list[dict[str, Any]]:
    return manifest(tmp_path / "backups", b["backup_id"])["objects"]


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


@pytest.mark.parametrize(
    "marker", ["live", "dead_pid", "stale", "old_live", "reused_pid", "skewed_clock"])
async def test_a_backup_waits_only_for_a_live_prune_of_another_process(
    client: Any, tmp_path: Path, marker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across processes a prune announces itself in `prunes/`: a backup waits
    while one of another live process is there, and ignores (and removes) one
    left by a process that died or that has not been rewritten for ten minutes.
    On this host a marker whose process runs is live while it is rewritten (a
    running prune rewrites it every minute from a thread of its own, reading
    included), unless that process started after the marker was written
    (`reused_pid`); one not rewritten for ten minutes is a leftover whatever
    its pid (`old_live`: a marker planted naming pid 1 held every BACKUP of
    its target for ever; a prune whose marker was taken stops before it
    deletes anything).
    Age is the store's: a server whose clock is 11 minutes ahead waits for a
    fresh marker of another host (`skewed_clock`)."""
    await fill(client, files=1)
    prunes = tmp_path / "backups" / "nightly" / "prunes"
    prunes.mkdir(parents=True)
    path = prunes / "0123456789abcdef.json"
    other = sleeper()
    try:
        if marker == "dead_pid":
            other.kill()
            other.wait()
        started = "2026-01-01T00:00:00.000Z" if marker == "reused_pid" else utc_now()
        doc = {"host": "elsewhere" if marker in ("stale", "skewed_clock") else socket.gethostname(),
               "pid": other.pid, "started_at": started}
        path.write_text(json.dumps(doc))
        if marker in ("stale", "old_live"):
            old = time.time() - 3600
            os.utime(path, (old, old))
        if marker == "skewed_clock":
            ahead = time.time_ns() + 660 * 10**9
            monkeypatch.setattr(prunes_module.time, "time_ns", lambda: ahead)
            monkeypatch.setattr(jobproc, "_mode", "off")  # the job runs in this process
        job_id = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)"))[
            0]["rows"][0]["job_id"]
        if marker in ("live", "skewed_clock"):
            await asyncio.sleep(0.3)
            row = await job_row(client, job_id)
            assert row["status"] == "running" and row["files_done"] == 0
            assert path.exists()
            path.unlink()  # the other process's prune has finished
        done = await wait_job(client, job_id)
        assert done["status"] == "completed", done
        assert not path.exists()
    finally:
        other.kill()
        other.wait()


# --- detached jobs --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["backup", "restore", "verify"])
async def test_detached_job_returns_at_once_and_its_fraction_rises_steadily(
    client: Any, kind: str
) -> None:
    await fill(client, files=8, rows=100, width=500)  # ~800 KB in 8 files
    b = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    state(client).config.backup.throttle_bytes_per_second = 600_000
    text = {
        "backup": "BACKUP DATABASE app TO 'fresh' WITH (detached = true)",  # nothing to reuse
        "restore": "RESTORE DATABASE app FROM 'nightly' AS copy WITH (detached = true)",
        "verify": f"VERIFY BACKUP '{b['backup_id']}' WITH (detached = true)",
    }[kind]
    started = time.monotonic()
    result = (await ok(client, text))[0]
    assert time.monotonic() - started < 0.5
    assert result["columns"] == ["job_id", "status"]
    job_id = result["rows"][0]["job_id"]
    assert result["rows"][0]["status"] in ("queued", "running")

    seen: list[float] = []
    while True:
        row = await job_row(client, job_id)
        if row["status"] != "running" and row["status"] != "queued":
            break
        seen.append(row["fraction_completed"])
        await asyncio.sleep(0.02)
    assert row["status"] == "completed", row
    assert row["fraction_completed"] == 1.0 and row["bytes_done"] == row["bytes_total"] > 0
    assert seen == sorted(seen), seen
    middle = {f for f in seen if 0 < f < 1}
    assert len(middle) >= 4, seen


async def test_a_bounded_pool_runs_one_and_queues_the_rest(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    cairn_config.jobs.max_concurrent = 1
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=1)
    b = await backup(client, "BACKUP DATABASE app TO 'nightly'")
    gate = Gate(state(client))
    faults.register("backup.before_object", gate)
    first = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)"))[0]
    await gate.reach()
    second = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)"))[0]
    third = (await ok(client, f"VERIFY BACKUP '{b['backup_id']}' WITH (detached = true)"))[0]
    ids = [r["rows"][0]["job_id"] for r in (first, second, third)]
    assert second["rows"][0]["status"] == third["rows"][0]["status"] == "queued"
    await asyncio.sleep(0.2)
    statuses = [(await job_row(client, i))["status"] for i in ids]
    assert statuses == ["running", "queued", "queued"]
    gate.opened.set()
    done = [await wait_job(client, i) for i in ids]
    assert [d["status"] for d in done] == ["completed"] * 3
    # One at a time: each started after the one before had finished.
    spans = sorted((d["started_at"], d["finished_at"]) for d in done)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), spans


# --- job history ----------------------------------------------------------------


async def test_history_is_trimmed_after_jobs_finish_oldest_first(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    cairn_config.jobs.history_max_count = 3
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app")
    ids = [(await backup(client, "BACKUP DATABASE app TO 'nightly'"))["job_id"]
           for _ in range(6)]
    for _ in range(100):
        rows = (await ok(client, "SELECT job_id FROM system.jobs ORDER BY job_id"))[0]["rows"]
        if len(rows) == 3:
            break
        await asyncio.sleep(0.02)
    assert [r["job_id"] for r in rows] == ids[-3:]


async def test_history_expires_by_age_while_idle(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    cairn_config.jobs.history_max_age_days = 1
    client = await aiohttp_client(create_app(cairn_config))
    cairn = state(client)
    cairn.catalog.put(Job("job-0old", "flush", status="completed",
                          finished_at="2020-01-01T00:00:00.000Z"))
    cairn.catalog.put(Job("job-1recent", "flush", status="completed", finished_at=utcnow()))
    cairn.catalog.put(Job("job-2running", "flush", status="running"))
    trimming = asyncio.create_task(cairn.jobs.trim_loop(period=0.02))
    try:
        for _ in range(100):
            if cairn.catalog.get(Job, "job-0old") is None:
                break
            await asyncio.sleep(0.02)
    finally:
        trimming.cancel()
    left = sorted(j.job_id for j in cairn.catalog.scan(Job))
    assert left == ["job-1recent", "job-2running"]


async def test_a_flood_of_flushes_does_not_push_backups_out_of_history(
    aiohttp_client: Any, cairn_config: Config
) -> None:
    """FLUSH TABLE is the one job a role-user can start: 10 of them pushed the
    record of an admin's backup out of system.jobs (history_max_count 5). Past
    the count flush jobs now go first."""
    cairn_config.jobs.history_max_count = 5
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "t-root", "user": "root", "role": "admin"},
                                {"token": "t-eve", "user": "eve", "role": "user"}]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY)",
             token="t-root")
    done = await ok(client, "BACKUP DATABASE app TO 'nightly'", token="t-root")
    job_id = done[0]["rows"][0]["job_id"]
    for i in range(10):
        await ok(client, f"INSERT INTO app.t VALUES ({i}); FLUSH TABLE app.t", token="t-eve")
    await state(client).run(state(client).jobs.trim_history)
    rows = (await ok(client, "SELECT job_id, job_type FROM system.jobs", token="t-root"))[0]
    assert job_id in {r["job_id"] for r in rows["rows"]}, rows["rows"]
    assert len(rows["rows"]) <= 5
