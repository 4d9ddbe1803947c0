"""What a namespace of many tables costs: CREATE TABLE by blocks of tables
made, one more CREATE and a DROP TABLE at the end, a DROP NAMESPACE ...
CASCADE of them all, each beside a client that runs `SELECT 1` every 20 ms
(its worst wait printed), and the start of the server over them. Every table
gets one buffered row, so each has a buffer to drop.

    python bench/many_tables.py [--tables 1000] [--block 250] [--server-root CHECKOUT]

Until 2026-12-06 each table's write buffer was a RocksDB column family of its
own, and creating or dropping one rewrote an OPTIONS file listing every
family while rocksdict held the GIL: 1,000 tables took 17 s for the first 250
and 168 s for the last, and the DROP NAMESPACE 519 s (the thirteenth attacker
round, docs/reliability.md). `--server-root` runs another checkout's server
(A/B)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cairn_process import CairnProcess  # noqa: E402


def beside(srv: CairnProcess, text: str) -> tuple[float, float, int]:
    """Run `text` while another client sends `SELECT 1` every 20 ms:
    (seconds, the probe's worst wait in seconds, probes)."""
    waits: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            srv.ok("SELECT 1")
            waits.append(time.perf_counter() - t0)
            time.sleep(0.02)

    t = threading.Thread(target=probe)
    t.start()
    time.sleep(0.1)
    t0 = time.perf_counter()
    srv.ok(text, timeout=3600)
    took = time.perf_counter() - t0
    done.set()
    t.join()
    return took, max(waits, default=0.0), len(waits)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--block", type=int, default=250)
    ap.add_argument("--server-root", type=Path, default=ROOT)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-many-"))
    cfg = work / "cairn.toml"
    cfg.write_text(f'[backup]\nroots = ["{work / "bk"}"]\n')
    srv = CairnProcess(work / "data", cfg, work / "server.log", root=args.server_root).start()
    print(f"server from {args.server_root}, {args.tables} tables", flush=True)
    try:
        srv.ok("CREATE NAMESPACE app")
        for first in range(0, args.tables, args.block):
            last = min(first + args.block, args.tables)
            t0 = time.perf_counter()
            for i in range(first, last):
                srv.ok(f"CREATE TABLE app.t{i} (k INT PRIMARY KEY, v TEXT); "
                       f"INSERT INTO app.t{i} VALUES ({i}, 'x')")
            ms = (time.perf_counter() - t0) * 1000 / (last - first)
            print(f"tables {first:5d}-{last - 1:5d}: {ms:7.1f} ms a CREATE TABLE + INSERT",
                  flush=True)
        took, worst, n = beside(srv, "CREATE TABLE app.x (k INT PRIMARY KEY)")
        print(f"one more CREATE TABLE: {took * 1000:.1f} ms; SELECT 1 beside it worst "
              f"{worst * 1000:.1f} ms ({n} probes)")
        took, worst, n = beside(srv, "DROP TABLE app.x")
        print(f"DROP TABLE: {took * 1000:.1f} ms; SELECT 1 beside it worst {worst * 1000:.1f} ms")
        srv.stop()
        t0 = time.perf_counter()
        srv.start()
        print(f"server start over {args.tables} tables: {time.perf_counter() - t0:.2f} s")
        assert srv.rows("SELECT count(*) AS n FROM app.t7") == [{"n": 1}]
        took, worst, n = beside(srv, "DROP NAMESPACE app CASCADE")
        print(f"DROP NAMESPACE app CASCADE ({args.tables} tables): {took:.2f} s; SELECT 1 "
              f"beside it worst {worst * 1000:.1f} ms ({n} probes)")
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
