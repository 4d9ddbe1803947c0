"""What one BACKUP costs the server's own process, by the namespace's shape (issue 15).

Each take of the GIL by a thread other than the event loop's can keep a
statement waiting (docs/performance.md, "What a BACKUP costs the statements"),
and what a BACKUP does in the server grows with what it backs up: its tables
(each captured, its buffered rows converted and sent to the job process), their
files (each listed in the image the job process gets), and the server's job
history. For each shape `TxF` (T tables, F flushed files each, one row left
buffered in each table) a real `cairn serve` runs `--backups` BACKUPs (keep_last
= 3) one after the other, no clients, and this prints per BACKUP: its wall
time, the CPU of the server's main thread and of its other threads
(/proc/<pid>/task/*/schedstat, ns) and of its job process (its children's
threads; the job process is kept between BACKUPs), and with `--takes` (perf and root: a uprobe
on CPython's take_gil) how many times the other threads took the GIL.

    python bench/backup_shapes.py [--shapes 1x5,1x200,50x2] [--history 10000]
        [--backups 20] [--takes] [--server-root CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cairn_process import CairnProcess, write_config  # noqa: E402 (after the path)
from bench.common import RssSampler  # noqa: E402
from bench.load import write_history  # noqa: E402

BACKUP = "BACKUP DATABASE s TO 'bk' WITH (keep_last = 3)"


def thread_cpu(pid: int) -> tuple[int, int]:
    """(ns on a CPU of the main thread, of every other thread) of `pid` so far."""
    main = other = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:  # it ended
        return 0, 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if tid == str(pid):
            main += ns
        else:
            other += ns
    return main, other


def children_cpu(pid: int) -> int:
    """ns on a CPU of every thread of the processes under `pid` (its job
    process, copiers) so far; a child that ended takes its count with it."""
    return sum(sum(thread_cpu(kid)) for kid in RssSampler.descendants(pid))


def gil_takes(pid: int, backups: int, srv: CairnProcess, work: Path) -> float:
    """The takes of the GIL by threads other than the main one, a BACKUP."""
    lib = os.path.join(sysconfig.get_config_var("LIBDIR") or "",
                       sysconfig.get_config_var("LDLIBRARY") or "libpython3.11.so")
    subprocess.run(["perf", "probe", "-q", "-x", lib, "take_gil"], capture_output=True)
    data = work / "takes.perf"
    rec = subprocess.Popen(["perf", "record", "-q", "-o", str(data), "-e",
                            "probe_libpython3:take_gil", "-p", str(pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)  # perf attaches
    for _ in range(backups):
        srv.ok(BACKUP)
    time.sleep(0.3)
    rec.send_signal(2)
    rec.wait()
    out = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid"],
                         capture_output=True, text=True).stdout
    return sum(1 for t in out.split() if int(t) != pid) / backups


def shape(root: Path, tables: int, files: int, backups: int, history: int,
          takes: bool) -> str:
    work = Path(tempfile.mkdtemp(prefix="backup_shapes-"))
    try:
        cfg = write_config(work / "cairn.toml", work / "backups", 0)
        if history:
            write_history(work / "data" / "catalog", history)
        srv = CairnProcess(work / "data", cfg, work / "server.log", root=root)
        srv.start()
        try:
            srv.ok("CREATE NAMESPACE s")
            for t in range(tables):
                srv.ok(f"CREATE TABLE s.t{t} (id BIGINT PRIMARY KEY, v TEXT)")
                for f in range(files):
                    values = ", ".join(f"({f * 100 + i}, 'value {i}')" for i in range(100))
                    srv.ok(f"INSERT INTO s.t{t} VALUES {values}")
                    srv.ok(f"FLUSH TABLE s.t{t}")
                srv.ok(f"INSERT INTO s.t{t} VALUES (-1, 'buffered')")
            srv.ok(BACKUP)  # the first: its job process started, the target made
            walls, mains, others, jobs = [], [], [], []
            for _ in range(backups):
                (m0, o0), j0 = thread_cpu(srv.pid), children_cpu(srv.pid)
                t0 = time.perf_counter()
                srv.ok(BACKUP)
                t1, (m1, o1) = time.perf_counter(), thread_cpu(srv.pid)
                walls.append(t1 - t0)
                mains.append(m1 - m0)
                others.append(o1 - o0)
                jobs.append(children_cpu(srv.pid) - j0)
                time.sleep(0.05)
            took = f"{gil_takes(srv.pid, backups, srv, work):.0f}" if takes else "–"
        finally:
            srv.stop()
        return (f"| {tables} x {files} | {history} | {statistics.median(walls) * 1e3:.1f} | "
                f"{statistics.median(mains) / 1e6:.1f} | {statistics.median(others) / 1e6:.1f} | "
                f"{statistics.median(jobs) / 1e6:.1f} | {took} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="1x5,1x200,50x2",
                    help="comma-separated TxF: T tables of F flushed files each")
    ap.add_argument("--history", type=int, default=0,
                    help="finished jobs in the server's history before it starts")
    ap.add_argument("--backups", type=int, default=20)
    ap.add_argument("--takes", action="store_true", help="count GIL takes (perf, root)")
    ap.add_argument("--server-root", default=str(ROOT))
    args = ap.parse_args()
    print(f"server from {args.server_root}; {args.backups} BACKUPs a shape, medians; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    print("| tables x files | job history | wall, ms | server main thread CPU, ms | "
          "other threads CPU, ms | job process CPU, ms | other threads' GIL takes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for spec in args.shapes.split(","):
        tables, files = (int(x) for x in spec.lower().split("x"))
        print(shape(Path(args.server_root), tables, files, args.backups, args.history,
                    args.takes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
