"""Do an archive segment's fsyncs stall the writers' WAL appends? (On ext4 a
`write()` can wait for a journal commit another file's fsync started.)

    python bench/fsync_stall.py [--rounds 4] [--segment-bytes 20000]

This process puts 1,500-byte values into a RocksDB (rocksdict, no sync: as a
statement's commit) and times each put, in alternating 5 s windows; in every
other window a second process does what an archiver's cycle does to the
disk once a second: write a file, fsync it, rename it, fsync the directory.
Prints each window's p99, p99.9 and maximum and the puts over 5 and 20 ms of
each setting."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from rocksdict import Options, Rdict

SYNCER = r'''
import os, sys, time
d, size = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
data, i = os.urandom(size), 0
while True:
    tmp = f"{d}/seg{i}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, f"{d}/seg{i}.seg")
    fd = os.open(d, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    i += 1
    time.sleep(1.0)
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--segment-bytes", type=int, default=20000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cairn-fsync-stall-")
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    db = Rdict(os.path.join(work, "db"), opts)
    value = os.urandom(1500)
    every: dict[str, list[float]] = {"off": [], "on": []}
    k = 0
    try:
        for _ in range(args.rounds):
            for setting in ("off", "on"):
                proc = (subprocess.Popen([sys.executable, "-c", SYNCER, os.path.join(work, "segs"),
                                          str(args.segment_bytes)]) if setting == "on" else None)
                lat = []
                end = time.monotonic() + 5
                while time.monotonic() < end:
                    t = time.perf_counter()
                    db[b"k%09d" % k] = value
                    lat.append(time.perf_counter() - t)
                    k += 1
                    if k % 20 == 0:
                        time.sleep(0.001)
                if proc is not None:
                    proc.kill()
                    proc.wait()
                every[setting] += lat
                lat.sort()
                print(f"  {setting:>3}: {len(lat)} puts, p99 {1e3 * lat[int(.99 * len(lat))]:.3f}, "
                      f"p99.9 {1e3 * lat[int(.999 * len(lat))]:.3f}, max {1e3 * lat[-1]:.2f} ms; "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
        for setting, lat in every.items():
            lat.sort()
            print(f"{setting} (fsyncs {'beside' if setting == 'on' else 'absent'}): "
                  f"{len(lat)} puts, p99.9 {1e3 * lat[int(.999 * len(lat))]:.3f} ms, max "
                  f"{1e3 * lat[-1]:.2f} ms, over 5 ms {sum(x > 0.005 for x in lat)}, "
                  f"over 20 ms {sum(x > 0.02 for x in lat)}")
    finally:
        db.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
