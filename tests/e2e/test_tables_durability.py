"""SIGKILL the real server during a stream of INSERTs: after a restart every
INSERT that got a 200 is there, none twice, and each statement is all or nothing."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from typing import Any


def test_sigkill_during_inserts(server_process: Any) -> None:
    srv = server_process()
    assert srv.post("CREATE NAMESPACE app; CREATE TABLE app.t (id BIGINT PRIMARY KEY, w INT) "
                    "WITH (flush_rows = 50)")[0] == 200
    acked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        i = 0
        while not stop.is_set():
            base = w * 3_000_000 + i * 3
            try:
                status, _ = srv.post(f"INSERT INTO app.t VALUES ({base}, {w}), ({base + 1}, {w}), "
                                     f"({base + 2}, {w})")
            except Exception:
                return  # the server died mid-request: not acknowledged
            if status == 200:
                with lock:
                    acked.extend([base, base + 1, base + 2])
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(2.5)  # long enough for automatic flushes to run too
    srv.proc.kill()  # SIGKILL
    srv.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) > 30

    srv2 = server_process(srv.data_dir)
    status, body = srv2.post("SELECT id FROM app.t")
    assert status == 200, body
    ids = [r["id"] for r in body["results"][0]["rows"]]
    counts = Counter(ids)
    assert not [i for i, n in counts.items() if n > 1], "a row is there twice"
    missing = set(acked) - set(ids)
    assert not missing, f"{len(missing)} acknowledged rows lost"
    starts = {i - i % 3 for i in ids}
    assert all(counts[s] and counts[s + 1] and counts[s + 2] for s in starts), "a torn statement"
    status, body = srv2.post("SELECT status, count(*) AS n FROM system.jobs GROUP BY status")
    assert status == 200


def _flush_job(srv: Any) -> dict[str, Any]:
    status, body = srv.post("SELECT status, error_message, rows, files_done, result "
                            "FROM system.jobs WHERE job_type = 'flush'")
    assert status == 200, body
    (job,) = body["results"][0]["rows"]
    return dict(job)


def test_a_flush_killed_after_its_files_landed_is_recorded_completed(
        server_process: Any, tmp_path: Any) -> None:
    """kill -9 between a flush's install and its job's end: the job was
    'failed', 'interrupted by server restart', its file installed and read."""
    data = tmp_path / "data"
    srv = server_process(data, env={"CAIRN_FAULTS": "flush.after_install:kill"})
    assert srv.post("CREATE NAMESPACE z; CREATE TABLE z.t (k INT PRIMARY KEY, v TEXT) "
                    "WITH (flush_rows = 1000000); INSERT INTO z.t SELECT i, 'x' FROM "
                    "range(500) r(i)")[0] == 200
    with contextlib.suppress(OSError):
        srv.post("FLUSH TABLE z.t")  # the server dies before it answers
    srv.proc.wait(15)
    srv = server_process(data)
    status, body = srv.post("SELECT buffered_rows, flushed_rows, files FROM system.tables")
    assert body["results"][0]["rows"] == [{"buffered_rows": 0, "flushed_rows": 500, "files": 1}]
    job = _flush_job(srv)
    assert job["status"] == "completed" and job["error_message"] is None, job
    assert (job["rows"], job["files_done"]) == (500, 1), job
    result = json.loads(job["result"]) if isinstance(job["result"], str) else job["result"]
    assert result["tables"] == 1 and result["rows"] == 500 and result["files"] == 1, result
    assert result["bytes"] > 0, result
    srv.stop()

    # FLUSH ALL dies after its first table: failed, saying how far it got.
    srv = server_process(data, env={"CAIRN_FAULTS": "flush.after_install:kill"})
    assert srv.post("CREATE TABLE z.u (k INT PRIMARY KEY) WITH (flush_rows = 1000000); "
                    "INSERT INTO z.t VALUES (1000, 'y'); INSERT INTO z.u VALUES (1)")[0] == 200
    with contextlib.suppress(OSError):
        srv.post("FLUSH ALL TABLES IN z")
    srv.proc.wait(15)
    srv = server_process(data)
    status, body = srv.post("SELECT status, error_message FROM system.jobs "
                            "WHERE job_type = 'flush' ORDER BY job_id")
    last = body["results"][0]["rows"][-1]
    assert last["status"] == "failed", last
    assert "after flushing 1 of its 2 tables (1 rows to 1 file(s), installed)" in \
        last["error_message"], last
    status, body = srv.post("SELECT table_name, buffered_rows FROM system.tables ORDER BY 1")
    assert body["results"][0]["rows"] == [{"table_name": "t", "buffered_rows": 0},
                                          {"table_name": "u", "buffered_rows": 1}]
