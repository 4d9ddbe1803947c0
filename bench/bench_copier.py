"""What the copier processes cost a copy with nothing else waiting (issue 15):
the same files copied fd to fd with `fastcopy.copy_file` by `--workers`
threads, each file hashed as written, in copier processes and on the threads
themselves (`copier.set_enabled(False)`), alternating, `--trials` each: the
wall time and the CPU of this process and of its copiers (from /proc). What
the copiers spare a statement waiting for the GIL is bench/stall_sched.py's.

    python bench/bench_copier.py [--mb 512] [--files 6] [--workers 4] [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.backup import copier, fastcopy  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def one(src: Path, dst: Path) -> None:
    s = os.open(src, os.O_RDONLY)
    d = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        fastcopy.copy_file(s, d)
        os.fsync(d)
    finally:
        os.close(s)
        os.close(d)


def trial(files: list[Path], out: Path, workers: int) -> tuple[float, float, float]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    os.sync()
    kids0 = {pid: cpu_of(pid) for pid in copier.idle_pids()}
    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda f: one(f, out / f.name), files))
    wall, own = time.perf_counter() - t0, time.process_time() - c0
    kids = sum(cpu_of(pid) - kids0.get(pid, 0.0) for pid in copier.idle_pids())
    return wall, own, kids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-copier-", dir=args.dir))
    try:
        files = []
        for i in range(args.files):
            f = tmp / f"src{i}"
            with open(f, "wb") as out:
                for _ in range(args.mb // args.files):
                    out.write(os.urandom(1 << 20))
            files.append(f)
        os.sync()
        for f in files:  # warm: the page cache holds the sources, as a backup's usually are
            f.read_bytes()
        print(f"{args.files} files, {args.mb} MiB, {args.workers} threads, fsync each; "
              f"load {os.getloadavg()[0]:.2f}")
        print("| trial | where | wall s | this process CPU s | copiers CPU s | load |")
        print("|---|---|---:|---:|---:|---:|")
        for t in range(args.trials):
            for where in ("process", "thread"):
                copier.set_enabled(where == "process")
                wall, own, kids = trial(files, tmp / "out", args.workers)
                print(f"| {t} | {where} | {wall:.3f} | {own:.3f} | {kids:.3f} "
                      f"| {os.getloadavg()[0]:.2f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
