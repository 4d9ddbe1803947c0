"""Single-row INSERTs beside back-to-back BACKUPs, in one process, the transfer
giving way to statements or not (server/throttle.py `Statements`), alternating
round by round on the same data.

Each INSERT runs on the main thread at nice 0 (as `[server] inline_statements`
runs it on the event loop), counted as a running statement; the backups run on
a thread at `[jobs] background_nice` 10, as a job does. Per INSERT: wall time,
the thread's own CPU time (`time.thread_time`), its run-queue wait (runnable
but not running, /proc/thread-self/schedstat) and the rest, the time it was
blocked: for an INSERT that does no I/O of its own but a buffered RocksDB write,
that is waiting for the GIL. No HTTP, no client: the two things a transfer can
take from a statement, the CPU and the GIL, seen apart. The INSERTs pause 1 ms
between each other (a client's turn-around).

    python bench/bench_give_way.py --data /tmp/gw [--mb 512] [--rounds 3] [--inserts 1000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlglot

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backup import build
from common import ROOT, pct

from catalog import Catalog
from server.config import StorageConfig
from server.throttle import Statements
from storage import priority
from storage.backup import Repository, resolve_target, write_backup
from storage.engine import Engine

AIM_MS = 15.0


class BenchWork:
    """A job's Work: never cancelled; gives way to `statements` if given."""

    cancelled = False
    pause_requested = False

    def __init__(self, statements: Statements | None) -> None:
        self.statements = statements

    def check_cancelled(self) -> None:
        pass

    def progress(self, **_: Any) -> None:
        pass

    def fault(self, point: str, **info: Any) -> None:
        pass

    def give_way(self) -> None:
        if self.statements is not None:
            self.statements.give_way()


def schedstat() -> tuple[float, float]:
    """(ms of this thread's CPU, ms it waited for a CPU). The CPU time from
    clock_gettime: schedstat's first field is not brought up to date for the
    thread that reads it."""
    queued = Path("/proc/thread-self/schedstat").read_text().split()[1]
    return time.thread_time() * 1000, int(queued) / 1e6


def backups(engine: Engine, root: Path, work: BenchWork, stop: threading.Event,
            took: list[float], names: Any) -> None:
    priority.lower_this_thread()
    while not stop.is_set():
        repo = Repository(resolve_target(f"gw{next(names)}", [str(root)], {}), compression="zstd")
        t0 = time.perf_counter()
        with engine.snapshot({"big": None}) as snap:
            (image,) = snap.namespaces
            write_backup(repo, image, f"bk-{time.time_ns()}", snapshot_at=snap.snapshot_at,
                         label=None, work=work)
        took.append(time.perf_counter() - t0)


def one_round(engine: Engine, root: Path, give_way: bool, inserts: int, first: int,
              names: Any) -> dict[str, Any]:
    statements = Statements()
    stop, took = threading.Event(), []
    worker = threading.Thread(target=backups, args=(engine, root, BenchWork(
        statements if give_way else None), stop, took, names))
    load0 = os.getloadavg()[0]
    worker.start()
    time.sleep(0.5)  # the snapshot is taken, the transfer is running
    rows = []
    for i in range(first, first + inserts):
        expression = sqlglot.parse_one(
            f"INSERT INTO big.events (n, note) VALUES ({i}, 'event {i}')", read="duckdb")
        statements.started()
        c0, q0, t0 = *schedstat(), time.perf_counter()
        try:
            engine.execute(expression, None, "big")
        finally:
            statements.ended()
        wall = (time.perf_counter() - t0) * 1000
        c1, q1 = schedstat()
        rows.append((wall, c1 - c0, q1 - q0))
        time.sleep(0.001)
    stop.set()
    worker.join()
    for d in root.iterdir():
        shutil.rmtree(d, ignore_errors=True)
    walls = [r[0] for r in rows]
    slow = [r for r in rows if r[0] > AIM_MS] or [(0.0, 0.0, 0.0)]

    def mean(rs: list[tuple[float, ...]], k: int) -> float:
        return statistics.fmean(r[k] for r in rs)

    return {
        "give_way": give_way, "p50": pct(walls, 50), "p99": pct(walls, 99), "max": max(walls),
        "over": sum(1 for w in walls if w > AIM_MS),
        "cpu": mean(rows, 1), "queued": mean(rows, 2),
        "blocked": mean(rows, 0) - mean(rows, 1) - mean(rows, 2),
        "slow_queued": mean(slow, 2), "slow_blocked": mean(slow, 0) - mean(slow, 1) - mean(slow, 2),
        "backups": len(took), "backup_s": statistics.median(took) if took else float("nan"),
        "load": (load0, os.getloadavg()[0]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--data", required=True, help="built here once, copied for each run")
    ap.add_argument("--rounds", type=int, default=3, help="pairs of rounds (off, on)")
    ap.add_argument("--inserts", type=int, default=1000, help="INSERTs per round")
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    if not (Path(args.data) / "catalog").exists():
        build(Path(args.data), {"big": args.mb}, 100)
    tmp = Path(tempfile.mkdtemp(prefix="cairn-give-way-", dir=args.dir))
    try:
        shutil.copytree(args.data, tmp / "data")
        (tmp / "backups").mkdir()
        catalog = Catalog(tmp / "data" / "catalog")
        engine = Engine(catalog, tmp / "data", StorageConfig())
        priority.set_background_nice(priority.DEFAULT_NICE)
        engine.create_table("big", "events", "shared", [
            {"name": "n", "type": {"name": "BIGINT"}}, {"name": "note", "type": {"name": "TEXT"}}])
        names = itertools.count()
        print(f"bench_give_way: {ROOT}, {args.mb} MB, {args.inserts} INSERTs a round, "
              f"{os.cpu_count()} CPUs\n")
        print("| round | give way | p50 / p99 / max ms | over 15 ms | per INSERT: CPU / waiting "
              "for a CPU / blocked (GIL) ms | INSERTs over 15 ms: waiting / blocked ms "
              "| backups (median s) | load |\n|---|---|---|---:|---|---|---|---|")
        n = 0
        for r in range(args.rounds):
            for give_way in (False, True):
                s = one_round(engine, tmp / "backups", give_way, args.inserts, n, names)
                n += args.inserts
                print(f"| {r + 1} | {'on' if give_way else 'off'} | {s['p50']:.1f} / "
                      f"{s['p99']:.1f} / {s['max']:.1f} | {s['over']} | {s['cpu']:.2f} / "
                      f"{s['queued']:.2f} / {s['blocked']:.2f} | {s['slow_queued']:.1f} / "
                      f"{s['slow_blocked']:.1f} | {s['backups']} ({s['backup_s']:.2f}) "
                      f"| {s['load'][0]:.1f}-{s['load'][1]:.1f} |", flush=True)
        engine.close()
        catalog.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
