"""A job's repository work in a job process (storage/jobproc.py): BACKUP's
store and manifest, keep_last's listing and prune, VERIFY; under SCHED_IDLE
by default; what happens when that process dies, or the server does."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from server import faults
from server.app import create_app
from server.config import Config
from storage import jobproc
from storage.backup import Repository
from tests.helpers import Gate, fill, job_row, ok, sql, state, target_files


@pytest.fixture
def cairn_config(cairn_config: Config) -> Config:
    """The job processes under SCHED_IDLE (the default; set here all the same)."""
    cairn_config.jobs.job_process = "idle"
    return cairn_config


class NoWork:
    """A Work for a call no job is behind."""

    cancelled = False
    pause_requested = False

    def check_cancelled(self) -> None:
        pass

    def progress(self, **counters: Any) -> None:
        pass

    def fault(self, point: str, **info: Any) -> None:
        pass

    def give_way(self) -> None:
        pass


@pytest.fixture
def never_starved(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test that looks at SCHED_IDLE itself, beside the suite's other
    workers keeping the CPUs busy: no call is lifted out of it (the lift is
    tested in tests/storage/test_jobproc.py). The kept process's imports (~1 s
    of CPU) are done first in a lifted call, back under SCHED_IDLE after it:
    never lifted they crawled beside busy CPUs. The other tests here let a
    starved call be lifted, as the server does: never lifted, a BACKUP beside
    three busy loops with -n 2 took 114 s, and a job took over 60 s to reach
    its first fault point (2 tests failed in 1 run)."""
    assert jobproc.mode() == "idle"  # the server's (client) set it
    monkeypatch.setattr(jobproc, "STARVE_SECONDS", 3600.0)
    monkeypatch.setattr(jobproc, "_starved_at", time.monotonic())
    jobproc.call(NoWork(), os.getpid)
    jobproc._starved_at = -jobproc.STARVED_HOLD


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


async def test_backup_keep_last_and_verify_run_in_an_idle_job_process(
        client: Any, tmp_path: Path, never_starved: None) -> None:
    await fill(client, files=2)
    seen: dict[str, list[tuple[int, int]]] = {}

    def record(point: str) -> Any:
        def at(info: dict[str, Any]) -> None:
            seen[point] = [(pid, os.sched_getscheduler(pid)) for pid in jobproc.busy()]
        return at

    for point in ("backup.before_manifest", "prune.before_delete"):
        faults.register(point, record(point))
    first = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    await ok(client, "INSERT INTO app.blobs VALUES (99999, 'x')")
    second = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)"))[0]
    assert first["backup_id"] != second["rows"][0]["backup_id"]
    for point in ("backup.before_manifest", "prune.before_delete"):
        ((pid, policy),) = seen[point]
        assert pid != os.getpid() and "storage.jobchild" in cmdline(pid)
        assert policy == os.SCHED_IDLE
    checked = (await ok(client, f"VERIFY BACKUP '{second['rows'][0]['backup_id']}'"))[0]
    assert checked["rows"][0]["is_valid"] is True
    listed = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]
    assert [r["backup_id"] for r in listed] == [second["rows"][0]["backup_id"]]


async def test_keep_last_reads_and_deletes_in_the_target_only_from_the_job_process(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """keep_last's drop reads the manifest, checks the locks, deletes it and
    lists the bases for the archive's prune in the job process: on the
    server's GIL that Python kept the statements waiting (docs/performance.md,
    "The event loop's GIL beside a BACKUP"). Here, only the catalog and the
    job's row."""
    await fill(client, files=1)
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    here: list[str] = []

    def spy(name: str) -> Any:
        real = getattr(Repository, name)

        def called(self: Repository, *args: Any, **kwargs: Any) -> Any:
            here.append(name)
            return real(self, *args, **kwargs)
        called.__name__ = name  # a bound method goes to a job process by its name
        return called

    for name in ("read_manifest", "check_prunable", "delete_manifest", "list_manifests",
                 "manifest_ids"):
        monkeypatch.setattr(Repository, name, spy(name))
    await ok(client, "INSERT INTO app.blobs VALUES (99999, 'x')")
    done = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)"))[0]
    during = list(here)
    listed = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]
    assert [r["backup_id"] for r in listed] == [done["rows"][0]["backup_id"]]  # one dropped
    assert during == []


async def test_a_backup_with_keep_last_is_two_job_process_calls(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store, then keep_last's listing, drops and the archive's prune in
    one more call (storage/backup/drops.py `keep_newest`): a call's messages
    are takes of the server's GIL beside the statements, and keep_last made
    four calls a dropped backup (docs/performance.md)."""
    await fill(client, files=1)
    for i in range(3):
        await ok(client, f"INSERT INTO app.blobs VALUES ({100_000 + i}, 'x')")
        await ok(client, "BACKUP DATABASE app TO 'nightly'")
    calls: list[str] = []
    real = jobproc.call

    def counted(job: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return real(job, fn, *args, **kwargs)

    monkeypatch.setattr(jobproc, "call", counted)
    done = (await ok(client, "BACKUP DATABASE app TO 'nightly' WITH (keep_last = 1)"))[0]
    assert calls == ["write_backup", "keep_newest"]
    listed = (await ok(client, "SHOW BACKUPS IN 'nightly'"))[0]["rows"]
    assert [r["backup_id"] for r in listed] == [done["rows"][0]["backup_id"]]  # three dropped
    shown = (await ok(client, "SHOW BACKUPS"))[0]["rows"]  # the catalog's list agrees
    assert [r["backup_id"] for r in shown] == [done["rows"][0]["backup_id"]]


async def test_a_backups_buffered_rows_are_written_as_parquet_in_the_job_process(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot converts the buffered rows in the server (the buffer is
    its own) and the job process writes them as Parquet: encoding, hashing and
    file calls were most of the CPU a BACKUP's thread used beside the event
    loop (docs/performance.md). Nothing is lost on the way: a SHARED table's
    flushed and buffered rows (an UPDATE among them), and a USER table whose
    rows are all buffered, one file per user, come back whole, and the live
    counts in the manifest are the buffered rows'."""
    import storage.snapshot

    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
                     "CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, v TEXT)")
    await ok(client, "INSERT INTO app.t VALUES (1, 'a'), (2, 'b'); FLUSH TABLE app.t")
    await ok(client, "INSERT INTO app.t VALUES (3, 'c'); UPDATE app.t SET v = 'B' WHERE id = 2")
    for user, ids in (("alice", (1, 2)), ("bob", (1,))):
        for i in ids:
            await ok(client, f"INSERT INTO app.u VALUES ({i}, '{user}')", user=user)
    here: list[str] = []  # the buffers encoded in this process, to a file or in memory
    real, in_memory = storage.snapshot.write_data_file, storage.snapshot.data_file_bytes

    def spy(path: Path, *args: Any, **kwargs: Any) -> Any:
        here.append(str(path))
        return real(path, *args, **kwargs)

    def spy_memory(*args: Any, **kwargs: Any) -> Any:
        here.append("in memory")
        return in_memory(*args, **kwargs)

    monkeypatch.setattr(storage.snapshot, "write_data_file", spy)
    monkeypatch.setattr(storage.snapshot, "data_file_bytes", spy_memory)
    done = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    assert here == []
    assert (done["rows"], done["row_versions"]) == (6, 7)
    tables = {r["table_name"]: (r["rows"], r["row_versions"]) for r in
              (await ok(client, f"SHOW BACKUP '{done['backup_id']}'"))[0]["rows"]}
    assert tables == {"t": (3, 4), "u": (3, 3)}
    checked = (await ok(client, f"VERIFY BACKUP '{done['backup_id']}'"))[0]["rows"][0]
    assert checked["is_valid"] is True
    await ok(client, "RESTORE DATABASE app FROM 'nightly' AS copy")
    rows = (await ok(client, "SELECT id, v FROM copy.t ORDER BY id"))[0]["rows"]
    assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
    for user, want in (("alice", [1, 2]), ("bob", [1])):
        got = (await ok(client, "SELECT id, v FROM copy.u ORDER BY id", user=user))[0]["rows"]
        assert got == [{"id": i, "v": user} for i in want]
    # With no job process the server writes them itself, the same way.
    monkeypatch.setattr(jobproc, "_mode", "off")
    await ok(client, "INSERT INTO app.t VALUES (4, 'd')")
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    # app.t's buffer, and app.u's, one file per user, each small: encoded in memory
    assert here == ["in memory"] * 3


async def test_a_backup_sends_its_buffered_rows_through_a_file_not_the_socket(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """~1 MB of buffered rows go to the job process as an Arrow file the server
    wrote in one call: through the socket they went in many small writes
    while the process (under SCHED_IDLE) read them, each a take of the
    server's GIL. What the server sends stays small, and every row arrives."""
    await ok(client, "CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
    values = ", ".join(f"({i}, '{i:0200}')" for i in range(5000))
    await ok(client, f"INSERT INTO app.t VALUES {values}")  # buffered: ~1 MB
    sent: list[int] = []
    real = jobproc.send_framed

    def sending(conn: Any, msg: Any) -> None:
        import pickle

        bufs: list[Any] = []
        sent.append(len(pickle.dumps(msg, protocol=5, buffer_callback=bufs.append))
                    + sum(b.raw().nbytes for b in bufs))
        real(conn, msg)

    monkeypatch.setattr(jobproc, "send_framed", sending)
    done = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    assert sent and max(sent) < 64 * 1024, sent
    assert done["rows"] == 5000
    await ok(client, "RESTORE DATABASE app FROM 'nightly' AS copy")
    got = (await ok(client, "SELECT count(*) AS n, sum(length(v)) AS s FROM copy.t"))[0]["rows"]
    assert got == [{"n": 5000, "s": 5000 * 200}]


async def test_off_runs_the_work_in_the_server(aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.jobs.job_process = "off"
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=1)
    busy: list[list[int]] = []
    faults.register("backup.before_manifest", lambda info: busy.append(jobproc.busy()))
    done = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    assert busy == [[]]
    assert (await ok(client, f"VERIFY BACKUP '{done['backup_id']}'"))[0]["rows"][0]["is_valid"]


async def test_nice_runs_it_at_the_background_nice(aiohttp_client: Any,
                                                   cairn_config: Config) -> None:
    cairn_config.jobs.job_process = "nice"
    cairn_config.jobs.background_nice = 13
    client = await aiohttp_client(create_app(cairn_config))
    await fill(client, files=1)
    seen: list[tuple[int, int]] = []
    faults.register("backup.before_manifest", lambda info: seen.extend(
        (os.sched_getscheduler(p), os.getpriority(os.PRIO_PROCESS, p)) for p in jobproc.busy()))
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    assert seen == [(os.SCHED_OTHER, 13)]


async def test_a_lost_job_process_fails_the_backup_and_leaves_nothing(
        client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    await fill(client, files=1)
    kept = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    target = tmp_path / "backups" / "nightly"
    before = target_files(target)
    await fill(client, table="more", files=2)

    def lose(info: dict[str, Any]) -> None:
        for pid in jobproc.busy():
            os.kill(pid, signal.SIGKILL)

    faults.register("backup.before_manifest", lose)
    status, body = await sql(client, "BACKUP DATABASE app TO 'nightly'")
    # Killed from outside (the OOM killer, kill -9): no bug of the server's,
    # 503 as anything that cannot be done now, a WARNING line, no trace.
    assert (status, body["error"]["code"]) == (503, "UNAVAILABLE"), body
    assert body["error"]["message"] == ("the job process ended in the middle of its work "
                                        "(exit status -9)"), body
    failed = [r for r in caplog.records if "job process ended" in r.getMessage()]
    assert failed and all(r.levelno == logging.WARNING and not r.exc_info for r in failed)
    # Its objects and lock are gone; the backup before it is whole.
    assert target_files(target) == before
    faults.clear()
    again = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]
    for b in (kept, again):
        assert (await ok(client, f"VERIFY BACKUP '{b['backup_id']}'"))[0]["rows"][0]["is_valid"]


async def test_kill_job_and_pause_reach_the_job_process(client: Any, tmp_path: Path) -> None:
    await fill(client, files=3)
    gate = Gate(state(client), match=lambda info: info["index"] == 1)
    faults.register("backup.before_object", gate)
    started = (await ok(client, "BACKUP DATABASE app TO 'paused' WITH (detached = true)"))[0]
    job_id = started["rows"][0]["job_id"]
    await gate.reach()
    assert len(jobproc.busy()) == 1
    await ok(client, f"PAUSE JOB '{job_id}'")
    gate.opened.set()
    for _ in range(200):  # the process parks at its next check, in the server
        if (await job_row(client, job_id))["status"] == "paused":
            break
        await asyncio.sleep(0.02)
    assert (await job_row(client, job_id))["status"] == "paused"
    done_before = (await job_row(client, job_id))["files_done"]
    await asyncio.sleep(0.3)
    assert (await job_row(client, job_id))["files_done"] == done_before  # nothing moves
    took = time.monotonic()
    await ok(client, f"KILL JOB '{job_id}'")
    row = await job_row(client, job_id)
    assert row["status"] == "cancelled" and time.monotonic() - took < 2.0
    target = tmp_path / "backups" / "paused"
    for _ in range(100):
        if not jobproc.busy():
            break
        await asyncio.sleep(0.02)
    files = target_files(target)
    assert files["manifests"] == files["locks"] == files["objects"] == set(), files


def test_the_job_process_dies_with_the_server(tmp_path: Path, server_process: Any) -> None:
    config = tmp_path / "cairn.toml"
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n'
                      '[jobs]\njob_process = "idle"\n')
    srv = server_process(config=config, env={"CAIRN_FAULTS": "backup.before_manifest:sleep=60"})
    for text in ("CREATE NAMESPACE app", "CREATE TABLE app.t (x INT)",
                 "INSERT INTO app.t VALUES (1)", "FLUSH TABLE app.t",
                 "BACKUP DATABASE app TO 'nightly' WITH (detached = true)"):
        status, body = srv.post(text)
        assert status == 200, body
    assert srv.proc is not None
    children: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not children:
        time.sleep(0.05)
        children = [p for p in _children(srv.proc.pid) if "storage.jobchild" in cmdline(p)]
        # the fault sleeps in the server while the job process waits for its answer
        if children and not (tmp_path / "backups" / "nightly" / "locks").exists():
            children = []
    assert children, "no job process holding the backup"
    srv.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.05)
    assert not any(_alive(p) for p in children)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _kept(within: float = 10.0) -> list[int]:
    """The pids of the job processes kept ready, once there is one, and no
    start is still queued (one that ran while a call held the kept process
    would be kept in its place: tests/storage/test_jobproc.py)."""
    jobproc._on_starter(lambda: None).result()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with jobproc._guard:
            kept = [p.pid for p in jobproc._idle]
        if kept:
            return kept
        time.sleep(0.05)
    return []


async def test_a_job_process_is_ready_before_the_first_job(client: Any) -> None:
    """One job process is started with the server and kept ready, so no job
    waits for its imports; a backup uses it, and gives it back for the next."""
    (ready,) = _kept()
    assert "storage.jobchild" in cmdline(ready)
    await fill(client, files=1)
    used: list[int] = []
    faults.register("backup.before_manifest", lambda info: used.extend(jobproc.busy()))
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    assert used == [ready, ready]
    assert _kept() == [ready] and _alive(ready)


async def test_the_kept_job_process_outlives_a_restore(client: Any) -> None:
    """A RESTORE runs in the server and leaves the kept job process alone, so
    the BACKUP after it does not wait for a new one's imports (ending it for
    the restore's memory made backups under load 3x slower)."""
    await fill(client, files=1)
    used: list[int] = []
    faults.register("backup.before_manifest", lambda info: used.extend(jobproc.busy()))
    bid = (await ok(client, "BACKUP DATABASE app TO 'nightly'"))[0]["rows"][0]["backup_id"]
    await ok(client, f"RESTORE DATABASE app FROM 'nightly' AS app_copy WITH (backup_id = '{bid}')")
    await ok(client, "BACKUP DATABASE app TO 'nightly'")
    assert len(used) == 2 and used[0] == used[1] and _kept() == used[:1]
    rows = (await ok(client, "SELECT count(*) AS n FROM app_copy.blobs"))[0]["rows"]
    assert rows[0]["n"] > 0


def test_relative_paths_mean_the_same_in_the_job_process(tmp_path: Path) -> None:
    """`cairn serve` on its embedded defaults (but job processes on), from
    some directory: the data dir and the backup root are relative to it, in
    the job process too."""
    import json
    import subprocess
    import sys
    import urllib.request

    from tests.helpers import free_port

    port = free_port()
    (tmp_path / "jobs.toml").write_text('[jobs]\njob_process = "idle"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--port", str(port), "--pg-port", "0",
         "--config", "jobs.toml"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()

        def post(text: str) -> dict[str, Any]:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/sql", data=json.dumps({"sql": text}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                body: dict[str, Any] = json.loads(resp.read())
            assert body["status"] == "success", body
            return body["results"][-1]

        post("CREATE NAMESPACE app; CREATE TABLE app.t (x INT); INSERT INTO app.t VALUES (1);"
             "FLUSH TABLE app.t")
        backup_id = post("BACKUP DATABASE app TO 'nightly'")["rows"][0]["backup_id"]
        assert post(f"VERIFY BACKUP '{backup_id}'")["rows"][0]["is_valid"] is True
        manifests = tmp_path / "cairn-data" / "backups" / "nightly" / "manifests"
        assert [p.name for p in manifests.iterdir()] == [f"{backup_id}.json"]
    finally:
        proc.kill()
        proc.wait()


CHILDREN = {"job process": "storage.jobchild", "copier": "copyloop.py",
            "archive helper": "storage.archive.helper"}


@pytest.mark.parametrize("when", ["started", "mid-backup", "copier", "archive helper"])
def test_ctrl_c_stops_the_server_and_not_its_helper_processes(
        tmp_path: Path, server_process: Any, when: str) -> None:
    """Ctrl-C in a terminal is SIGINT to the foreground process group: it
    reached the job process (idle, mid-import or mid-call), a copier or the
    archive helper too, which printed a KeyboardInterrupt traceback. The
    server owns the stop: it cancels the job, exits 0, and they go with it."""
    config = tmp_path / "cairn.toml"
    off = when == "copier"  # the backup's copies in copier processes of the server
    config.write_text(f'[backup]\nroots = ["{tmp_path / "backups"}"]\n'
                      f'[jobs]\njob_process = "{"off" if off else "idle"}"\n')
    slow = when in ("mid-backup", "copier")
    env = {"CAIRN_FAULTS": "backup.before_object:sleep=0.3"} if slow else {}
    srv = server_process(config=config, env=env, new_session=True)
    assert srv.proc is not None
    if when != "started":
        srv.post("CREATE NAMESPACE app; CREATE TABLE app.t (x INT)")
        for i in range(6):
            srv.post(f"INSERT INTO app.t VALUES ({i}); FLUSH TABLE app.t")
    if slow:
        _, body = srv.post("BACKUP DATABASE app TO 'nightly' WITH (detached = true, "
                           "compression = 'none')")  # raw objects: copied in copiers
        job_id = body["results"][0]["rows"][0]["job_id"]
    elif when == "archive helper":
        srv.post("START ARCHIVING DATABASE app TO 'nightly' WITH (detached = true)")
    name = CHILDREN.get(when, CHILDREN["job process"])
    children: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not children:
        time.sleep(0.02)
        children = [p for p in _children(srv.proc.pid) if name in cmdline(p)]
        if slow and not (tmp_path / "backups" / "nightly" / "locks").exists():
            children = []  # not yet in the middle of the backup
    assert children, f"no {when} process"
    os.killpg(srv.proc.pid, signal.SIGINT)
    srv.proc.wait(timeout=60)
    stderr = srv.log()  # (its pipes are read by ServerProcess from its start on)
    assert srv.proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in children):
        time.sleep(0.05)
    assert not any(_alive(p) for p in children)
    if slow:
        again = server_process(tmp_path / "data", config=config)
        _, body = again.post(f"SELECT status FROM system.jobs WHERE job_id = '{job_id}'")
        assert body["results"][0]["rows"] == [{"status": "cancelled"}], body
        assert target_files(tmp_path / "backups" / "nightly")["manifests"] == set()
