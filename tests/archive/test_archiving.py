"""START / STOP ARCHIVING, SHOW ARCHIVES, system.archives, SHOW RESTORE POINTS and
VERIFY ARCHIVE over HTTP, on a real in-process server and a local target."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from server.app import create_app
from server.config import Config
from tests.helpers import err, job_row, ok, rows

FAST = "WITH (interval = '100ms')"


async def wait_shipped(client: Any, ns: str = "app", timeout: float = 10.0) -> dict[str, Any]:
    """Wait until nothing of `ns` waits to be shipped; its system.archives row."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await rows(client, f"SELECT * FROM system.archives WHERE namespace = '{ns}'")
        if found and found[0]["lag_ms"] == 0 and found[0]["segments"] > 0:
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, found
        await asyncio.sleep(0.05)


async def archive_two_rows(client: Any, options: str = "") -> None:
    """app.t archived to 'arch' with `options` (after the interval), two rows
    shipped, archiving stopped."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' WITH (interval = '100ms'{options})")
    await ok(client, "INSERT INTO app.t VALUES (1), (2)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")


async def archive_one_row_and_close(client: Any) -> None:
    """app.t archiving to 'arch', one row shipped, then the server closed
    while archiving (a restart, or a change made while it is down, follows)."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    await client.close()


def segment_files(root: Path, target: str = "arch", ns: str = "app") -> list[Path]:
    return sorted((root / target / "archives" / ns).glob("*/*.seg"))


async def test_start_ship_verify_stop(client: Any, cairn_config: Config) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT);"
                     "INSERT INTO app.t VALUES (1, 'before')")
    row = (await rows(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}"))[0]
    assert row["namespace"] == "app" and row["status"] == "running"
    assert row["target"].endswith("/arch") and row["job_id"].startswith("job-")
    base_job = await rows(client, f"SELECT * FROM system.jobs WHERE job_id = '{row['job_id']}'")
    assert base_job[0]["job_type"] == "backup" and base_job[0]["status"] == "completed"
    await ok(client, """
        INSERT INTO app.t VALUES (2, 'b'), (3, 'c');
        UPDATE app.t SET v = 'B' WHERE id = 2;
        DELETE FROM app.t WHERE id = 3;
        ALTER TABLE app.t ADD COLUMN w INT DEFAULT 5;
        CREATE TABLE app.u (x INT);
        INSERT INTO app.u VALUES (9);
        DROP TABLE app.u;
    """)
    shown = await wait_shipped(client)
    assert shown["status"] == "running" and shown["last_error"] is None
    assert shown["archived_until"] and shown["bytes"] > 0
    assert (await rows(client, "SHOW ARCHIVES"))[0]["namespace"] == "app"
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    # 7 changes: 3 row statements + ALTER + CREATE + INSERT + DROP; the base holds row 1
    assert report["is_valid"] is True, report
    assert report["changes"] == 7 and report["errors"] == []
    assert len(report["windows"]) == 1
    points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert len(points) == 1 and points[0]["start_time"] <= points[0]["end_time"]
    assert points[0]["base_backup_id"].startswith("bk-")
    stopped = (await rows(client, "STOP ARCHIVING DATABASE app"))[0]
    assert stopped["status"] == "stopped" and stopped["lag_ms"] == 0
    await err(client, "STOP ARCHIVING DATABASE app", "NOT_FOUND")
    # writes after STOP are not shipped
    before = len(segment_files(Path(cairn_config.backup_roots[0])))
    await ok(client, "INSERT INTO app.t (id) VALUES (10)")
    await asyncio.sleep(0.3)
    assert len(segment_files(Path(cairn_config.backup_roots[0]))) == before


async def test_errors(client: Any) -> None:
    await err(client, "START ARCHIVING DATABASE nope TO 'arch'", "NOT_FOUND")
    await ok(client, "CREATE NAMESPACE app")
    await err(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = 'soon')",
              "INVALID_ARGUMENT")
    await err(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '1ms')",
              "INVALID_ARGUMENT")
    await err(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '\u0661s')",
              "INVALID_ARGUMENT")  # an Arabic-Indic 1 was read as one
    await err(client, "START ARCHIVING DATABASE app TO 'arch' WITH (compression = 'lz4')",
              "INVALID_ARGUMENT")
    await err(client, "START ARCHIVING DATABASE app TO 'arch' WITH (bogus = 1)",
              "INVALID_ARGUMENT")
    await err(client, "START ARCHIVING DATABASE app TO 'one.tar'", "INVALID_ARGUMENT")
    await err(client, "START ARCHIVING DATABASE app TO '/etc/x'", "PERMISSION_DENIED")
    await err(client, "STOP ARCHIVING DATABASE app", "NOT_FOUND")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch'")
    await err(client, "START ARCHIVING DATABASE app TO 'other'", "ALREADY_EXISTS")
    await err(client, "RESTORE DATABASE x FROM 'arch' AS app WITH (replace = true)",
              "INVALID_ARGUMENT")
    await err(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'missing'", "NOT_FOUND")
    await err(client, "VERIFY ARCHIVE FOR DATABASE app IN 'missing'", "NOT_FOUND")
    await ok(client, "STOP ARCHIVING DATABASE app")


async def test_role_user_is_refused(aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = [{"token": "a", "user": "root", "role": "admin"},
                                {"token": "u", "user": "bob", "role": "user"}]
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app", token="a")
    for text in ("START ARCHIVING DATABASE app TO 'arch'", "STOP ARCHIVING DATABASE app",
                 "SHOW ARCHIVES", "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'",
                 "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"):
        await err(client, text, "PERMISSION_DENIED", token="u")


async def test_flush_loses_nothing(client: Any) -> None:
    """Rows flushed to Parquet before the archiver ships them are still shipped:
    the change log keeps them until they are in the target."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '60m')")
    for i in range(5):
        await ok(client, f"INSERT INTO app.t VALUES ({i})")
    await ok(client, "FLUSH TABLE app.t")
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] and report["changes"] == 5


async def test_damaged_segments_are_reported(client: Any, cairn_config: Config) -> None:
    await archive_two_rows(client)
    seg = next(p for p in segment_files(Path(cairn_config.backup_roots[0]))
               if p.stat().st_size > 300)
    data = bytearray(seg.read_bytes())
    data[-5] ^= 0x01
    seg.write_bytes(bytes(data))
    (seg.parent / "junk.txt").write_text("x")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is False
    assert any(seg.name in e and "corrupt" in e for e in report["errors"]), report["errors"]
    assert any("junk.txt" in e for e in report["errors"])
    # a segment removed from the middle is a gap
    data[-5] ^= 0x01
    seg.write_bytes(bytes(data))
    (seg.parent / "junk.txt").unlink()
    files = segment_files(Path(cairn_config.backup_roots[0]))
    if len(files) >= 3:
        files[1].unlink()
        report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
        assert not report["is_valid"] and any("gap" in e for e in report["errors"])


async def test_encrypted_archive(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, "START ARCHIVING DATABASE app TO 'sealed' WITH (interval = '100ms', "
                     "encryption_passphrase = 'pw')")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    await ok(client, "STOP ARCHIVING DATABASE app")
    jobs = await rows(client, "SELECT statement FROM system.jobs")
    assert all("'pw'" not in (j["statement"] or "") for j in jobs)
    await err(client, "VERIFY ARCHIVE FOR DATABASE app IN 'sealed'", "BACKUP_INVALID")
    await err(client, "VERIFY ARCHIVE FOR DATABASE app IN 'sealed' WITH "
                      "(encryption_passphrase = 'wrong')", "BACKUP_INVALID")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'sealed' WITH "
                                 "(encryption_passphrase = 'pw')"))[0]
    assert report["is_valid"] and report["changes"] == 1


async def test_restart_resumes_without_gap(aiohttp_client: Any, cairn_config: Config) -> None:
    """A clean restart: archiving is running again and continues the same chain."""
    client = await aiohttp_client(create_app(cairn_config))
    await archive_one_row_and_close(client)
    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "INSERT INTO app.t VALUES (2)")
    shown = await wait_shipped(client)
    assert shown["status"] == "running"
    await ok(client, "STOP ARCHIVING DATABASE app")
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] and report["changes"] == 2 and len(report["windows"]) == 1


async def _archive_lag_samples(client: Any) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    resp = await client.get("/metrics")
    assert resp.status == 200
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            if s.name == "cairn_archive_lag_seconds":
                found[s.labels["namespace"]] = s.value
    return found


async def test_metrics_show_archive_lag_while_archiving(client: Any) -> None:
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    assert await _archive_lag_samples(client) == {}
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    lags = await _archive_lag_samples(client)
    assert set(lags) == {"app"} and 0.0 <= lags["app"] < 5.0
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert await _archive_lag_samples(client) == {}


async def test_a_failed_archive_keeps_its_lag_sample(client: Any, cairn_config: Config) -> None:
    """An archive that fails (its target lost config.json: it stays failed,
    shipping nothing) lost its cairn_archive_lag_seconds sample while
    system.archives showed lag_ms growing: a lag alert could never fire for
    the one archive that stopped shipping. Its sample stays, and grows."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    (Path(cairn_config.backup_roots[0]) / "arch" / "config.json").unlink()
    await ok(client, "INSERT INTO app.t VALUES (2)")
    deadline = asyncio.get_running_loop().time() + 10
    while (shown := await rows(client, "SELECT status, lag_ms FROM system.archives"))[0][
            "status"] != "failed":
        assert asyncio.get_running_loop().time() < deadline, shown
        await asyncio.sleep(0.05)
    first = await _archive_lag_samples(client)
    assert set(first) == {"app"} and first["app"] > 0, first
    while (later := await _archive_lag_samples(client)).get("app", 0) <= first["app"]:
        assert asyncio.get_running_loop().time() < deadline + 10, later
        await asyncio.sleep(0.05)
    assert (await rows(client, "SELECT status FROM system.archives"))[0]["status"] == "failed"
    await ok(client, "STOP ARCHIVING DATABASE app")
    assert await _archive_lag_samples(client) == {}


async def test_a_cycle_with_nothing_committed_reads_nothing(client: Any) -> None:
    """While nothing of the namespace is committed, its cycles go on (the
    heartbeat is theirs to write) but none reads the change log: the mark says
    nothing was logged after the target's end."""
    from storage.timing import TIMINGS

    def count(name: str) -> int:
        hist = TIMINGS.phases.get(name)
        return 0 if hist is None else hist.n

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    await ok(client, "INSERT INTO app.t VALUES (1)")
    await wait_shipped(client)
    await asyncio.sleep(0.25)  # a cycle that began before the ship was recorded ends
    reads, cycles = count("archive_read"), count("archive_ship")
    await asyncio.sleep(0.6)  # ~6 cycles of 100 ms
    assert count("archive_ship") >= cycles + 3
    assert count("archive_read") == reads
    await ok(client, "INSERT INTO app.t VALUES (2)")
    shipped = (await wait_shipped(client))["segments"]
    assert count("archive_read") > reads
    assert len(await rows(client, "SELECT * FROM app.t")) == 2 and shipped >= 2
    await ok(client, "STOP ARCHIVING DATABASE app")


async def test_base_backups_are_the_jobs_of_who_started_archiving(
        aiohttp_client: Any, cairn_config: Config) -> None:
    """START ARCHIVING's base backup job (and every later base, a restart
    between) was recorded with user_id NULL."""
    from server.app import CAIRN
    from server.archiving import Archiver, service

    client = await aiohttp_client(create_app(cairn_config))
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}", user="ops")
    (base,) = await rows(client, "SELECT user_id, statement FROM system.jobs "
                                 "WHERE job_type = 'backup'")
    assert base["user_id"] == "ops" and "base of continuous archiving" in base["statement"]
    await client.close()
    client = await aiohttp_client(create_app(cairn_config))
    cairn = client.server.app[CAIRN]
    svc = service(cairn)
    arch = svc.archivers.get("app") or Archiver(svc, "app")
    async with arch.lock:  # a base the archiver takes itself (its old one gone)
        await arch.take_base(await cairn.run(arch.record))
    users = await rows(client, "SELECT user_id FROM system.jobs WHERE job_type = 'backup'")
    assert users == [{"user_id": "ops"}, {"user_id": "ops"}]
    await ok(client, "STOP ARCHIVING DATABASE app")


async def test_a_restore_to_a_time_counts_the_changes_it_replayed(client: Any) -> None:
    """system.jobs.rows of a RESTORE `as_of` kept the base backup's count
    (1 here), where its answer counted the replayed rows too (7)."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    for i in range(2, 8):
        await ok(client, f"INSERT INTO app.t VALUES ({i})")
    until = (await wait_shipped(client))["archived_until"]
    restore = f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{until}')"
    done = (await rows(client, restore))[0]
    assert done["rows"] == done["row_versions"] == 7, done
    assert (await rows(client, "SELECT count(*) AS n FROM r.t"))[0]["n"] == 7
    job = await job_row(client, done["job_id"])
    assert job["rows"] == 7, job


async def test_an_idle_namespace_is_restorable_soon_after_start(client: Any) -> None:
    """The base's first segment goes at the next cycle, empty or not: an idle
    namespace had no restore point, and VERIFY ARCHIVE called its archive
    invalid, for the heartbeat's 10 s after START ARCHIVING."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY);"
                     "INSERT INTO app.t VALUES (1)")
    await ok(client, f"START ARCHIVING DATABASE app TO 'arch' {FAST}")
    points: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 3.0  # the heartbeat is 10 s
    while not points and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        points = await rows(client, "SHOW RESTORE POINTS FOR DATABASE app IN 'arch'")
    assert len(points) == 1, points
    report = (await rows(client, "VERIFY ARCHIVE FOR DATABASE app IN 'arch'"))[0]
    assert report["is_valid"] is True, report
    end = points[0]["end_time"]
    await ok(client, f"RESTORE DATABASE app FROM 'arch' AS r WITH (as_of = '{end}')")
    assert await rows(client, "SELECT id FROM r.t") == [{"id": 1}]
