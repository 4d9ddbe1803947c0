"""SIGKILL the real server during a stream of INSERTs: after a restart every
INSERT that got a 200 is there, none twice, and each statement is all or nothing."""

from __future__ import annotations

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
