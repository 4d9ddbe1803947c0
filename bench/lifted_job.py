"""A job process lifted out of SCHED_IDLE, seen from one INSERT client.

One client sends single-row INSERTs back to back (nothing between them)
while a full BACKUP of the 1 GiB namespace runs in the job process. The
client and the server's main thread keep both CPUs of this machine busy
between them, so the job process is soon starved and lifted
(storage/jobproc.py). A thread samples every job-process thread's policy
and number of allowed CPUs every 20 ms; the report gives the share of
samples lifted (SCHED_OTHER) and on how many CPUs, with the BACKUP's time,
the INSERTs done meanwhile, their longest, and how many took over 15 ms.
`--server-root` runs the server from another checkout (A/B runs).

    python bench/lifted_job.py --data DIR [--server-root CHECKOUT] [--runs 3] [--table big.events]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from common import ROOT, RssSampler, Server, session, sql  # noqa: E402 (after the path)

from storage.priority import threads  # noqa: E402

OVER_MS = 15.0


class Sampler(threading.Thread):
    """(policy, allowed CPUs) of every thread of the server's children, every 20 ms."""

    def __init__(self, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.server_pid = server_pid
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.02):
            now = time.monotonic()
            for pid in RssSampler.descendants(self.server_pid):
                for tid in threads(pid):
                    try:
                        policy = os.sched_getscheduler(tid)
                        cpus = len(os.sched_getaffinity(tid))
                    except OSError:
                        continue
                    self.samples.append((now, policy, cpus))


async def one_run(url: str, table: str) -> tuple[float, float, list[float]]:
    async with session(2) as http:
        ns = table.split(".")[0]
        await sql(http, url, f"CREATE NAMESPACE IF NOT EXISTS {ns}; "
                             f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, v TEXT)")
        done = False
        took: list[tuple[float, float]] = []

        async def inserts() -> None:
            i = 0
            while not done:
                t = time.monotonic()
                await sql(http, url, f"INSERT INTO {table} VALUES ({i}, 'x')")
                took.append((t, time.monotonic() - t))
                i += 1

        task = asyncio.create_task(inserts())
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await sql(http, url, "BACKUP DATABASE big TO 'nightly'")
        ended = time.monotonic()
        done = True
        await task
        return started, ended, [d for t, d in took if started <= t <= ended]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a data dir with the 1 GiB namespace `big` "
                                                  "(bench_writer.py --data builds one)")
    ap.add_argument("--server-root", default=str(ROOT), help="checkout the server runs from")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--table", default="w.t", help="the INSERTs' table (w.t); big.events "
                    "puts them in the namespace backed up, as bench_writer.py does")
    args = ap.parse_args()
    print(f"server from {args.server_root}, {len(os.sched_getaffinity(0))} CPUs")
    print("| run | BACKUP s | job threads sampled: lifted / on 1 CPU | INSERTs | "
          f"longest ms | over {OVER_MS:.0f} ms | load avg |")
    print("|---|---:|---|---:|---:|---:|---|")
    for run in range(args.runs):
        tmp = Path(tempfile.mkdtemp(prefix="cairn-lifted-", dir=args.dir))
        try:
            shutil.copytree(args.data, tmp / "data")
            srv = Server(tmp / "data", tmp / "server.log", root=Path(args.server_root))
            try:
                time.sleep(1.0)  # the job process kept ready has started
                load0 = os.getloadavg()[0]
                sampler = Sampler(srv.pid)
                sampler.start()
                started, ended, took = asyncio.run(one_run(srv.url, args.table))
                sampler.stop.set()
                sampler.join()
            finally:
                srv.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        inside = [(p, c) for t, p, c in sampler.samples if started <= t <= ended]
        lifted = Counter(p for p, _ in inside)[os.SCHED_OTHER]
        one_cpu = sum(1 for p, c in inside if p == os.SCHED_OTHER and c == 1)
        share = f"{lifted / max(1, len(inside)):.0%} / {one_cpu / max(1, lifted):.0%}"
        print(f"| {run + 1} | {ended - started:.2f} | {share} | {len(took)} | "
              f"{max(took) * 1e3:.1f} | {sum(d * 1e3 > OVER_MS for d in took)} | "
              f"{load0:.2f} / {os.getloadavg()[0]:.2f} |")


if __name__ == "__main__":
    main()
