"""How much of a local BACKUP/RESTORE is the disk: the same files written in
several ways, in the two disk states bench_transfer.py reports (issue 15).

Files: `--src` (a directory of files, e.g. a table's Parquet directory under a
data dir), or `--mb` MiB of random bytes in 6 files made here (not timed).
Every way writes all of them into a new directory and ends with everything
durable (files and directory fsynced), after a sync(2):

- `cp`: `cp -r` + `sync -f`, the baseline of bench_transfer.py;
- `cairn`: Cairn's own copy (storage/backup/fastcopy.copy_checked: preadv,
  sha256 and pwrite of one buffer, through the page cache, as a BACKUP and a
  RESTORE write), 4 files in flight, each fsynced as it lands;
- `cairn2`: the same with 2 in flight;
- `early`: the same, writeback started per chunk (sync_file_range), then fdatasync;
- `late`: every copy first, then all fsyncs in parallel;
- `falloc`: `cairn` with the destination fallocated to its size first.

States: `fresh` keeps every copy (each lands in blocks not recently freed);
`reuse` deletes the previous copy of the same way (and syncs) just before.
Ways alternate within a trial; the 1-minute load is printed with each figure.

    python bench/bench_disk_state.py [--mb 512 | --src DIR] [--ways cp,cairn,...]
                                     [--trials 3] [--state fresh|reuse] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.backup.fastcopy import copy_checked  # noqa: E402

_libc = ctypes.CDLL(None, use_errno=True)
SYNC_FILE_RANGE_WRITE = 2


def _copy(src: str, dest: str, early: bool = False, falloc: bool = False) -> int:
    """Copy and hash as Cairn does; returns the open destination fd."""
    s = os.open(src, os.O_RDONLY)
    d = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if falloc:
        os.posix_fallocate(d, 0, os.fstat(s).st_size)
    done = [0]

    def started(n: int) -> None:  # writeback of what was just copied, not waited for
        _libc.sync_file_range(d, ctypes.c_longlong(done[0]), ctypes.c_longlong(n),
                              SYNC_FILE_RANGE_WRITE)
        done[0] += n

    try:
        copy_checked(s, d, hashlib.sha256(), started if early else None)
    finally:
        os.close(s)
    return d


def _each(files: list[str], dest: Path, workers: int, **kw: bool) -> None:
    def one(f: str) -> None:
        d = _copy(f, str(dest / Path(f).name), **kw)
        (os.fdatasync if kw.get("early") else os.fsync)(d)
        os.close(d)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, files))


def _late(files: list[str], dest: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        fds = list(pool.map(lambda f: _copy(f, str(dest / Path(f).name)), files))
    with ThreadPoolExecutor(len(fds)) as pool:
        list(pool.map(os.fsync, fds))
    for d in fds:
        os.close(d)


def _cp(src: Path, dest: Path) -> None:
    subprocess.run(["cp", "-r", f"{src}/.", str(dest)], check=True)
    subprocess.run(["sync", "-f", str(dest)], check=True)


WAYS: dict[str, Callable[[Path, list[str], Path], None]] = {
    "cp": lambda src, files, dest: _cp(src, dest),
    "cairn": lambda src, files, dest: _each(files, dest, 4),
    "cairn2": lambda src, files, dest: _each(files, dest, 2),
    "early": lambda src, files, dest: _each(files, dest, 4, early=True),
    "late": lambda src, files, dest: _late(files, dest),
    "falloc": lambda src, files, dest: _each(files, dest, 4, falloc=True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", help="a directory of files to copy (default: made here)")
    ap.add_argument("--mb", type=int, default=512, help="MiB of random files made here (512)")
    ap.add_argument("--ways", default="cp,cairn,cairn2,early,late,falloc")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--state", choices=("fresh", "reuse"), default="fresh")
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()
    ways = args.ways.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-disk-", dir=args.dir))
    try:
        src = Path(args.src) if args.src else tmp / "src"
        if not args.src:
            src.mkdir()
            for i in range(6):
                (src / f"f{i}").write_bytes(os.urandom(args.mb * 2**20 // 6))
        files = sorted(str(p) for p in src.iterdir() if p.is_file())
        size = sum(os.path.getsize(f) for f in files) / 2**20
        print(f"{len(files)} files, {size:.0f} MiB, state {args.state}, "
              f"load at start {os.getloadavg()[0]:.2f}")
        times: dict[str, list[float]] = {w: [] for w in ways}
        previous: dict[str, Path] = {}
        for trial in range(args.trials):
            for way in ways:
                dest = tmp / f"{way}-{trial}"
                if args.state == "reuse" and way in previous:
                    shutil.rmtree(previous[way])
                os.sync()
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                dest.mkdir()
                WAYS[way](src, files, dest)
                fd = os.open(dest, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                times[way].append(time.perf_counter() - t0)
                previous[way] = dest
                print(f"  trial {trial} {way:7} {times[way][-1]:.3f} s  load {load:.2f}",
                      flush=True)
        print(f"\n| way ({args.state}) | seconds per trial | median |\n|---|---|---|")
        for way in ways:
            print(f"| {way} | {' '.join(f'{t:.2f}' for t in times[way])} | "
                  f"{statistics.median(times[way]):.2f} |")
        print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
