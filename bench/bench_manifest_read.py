"""How long one big manifest takes to read, and the longest the reader held
the GIL meanwhile (a ticker thread that sleeps 1 ms and notes its gaps).

A manifest of `--files` file entries in one table (shaped as BACKUP writes
them), packed by the checkout's own envelope, then `envelope.unpack` five
times. Runs in a child process per `--root`, so two checkouts compare in one
sitting:

    python bench/bench_manifest_read.py [--files 150000] [--root CHECKOUT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import hashlib, json, statistics, sys, threading, time
from types import SimpleNamespace
from storage.backup import envelope, manifest
from tests.storage_backup.conftest import backup_doc, table_doc

n = int(sys.argv[1])
src = [SimpleNamespace(sha256=hashlib.sha256(str(i).encode()).hexdigest(), size=1000 + i)
       for i in range(n)]
m, wanted = manifest.prepare(backup_doc("bk-0001", [table_doc("t", src)]))
m = manifest.seal(m, wanted, {o: c[1] for o, c in wanted.items()}, [])
data, _ = envelope.pack(m, False, None)
gaps, stop = [], False
def tick():
    last = time.perf_counter()
    while not stop:
        time.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
t = threading.Thread(target=tick)
t.start()
times = []
for _ in range(5):
    a = time.perf_counter()
    envelope.unpack(data, "bk-0001", lambda k: None)
    times.append(time.perf_counter() - a)
stop = True
t.join()
print(json.dumps({"mb": len(data) / 1e6, "median_s": statistics.median(times),
                  "longest_gap_ms": 1000 * max(gaps)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=150_000)
    parser.add_argument("--root", action="append", default=[])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; one manifest of {args.files} files; "
          "envelope.unpack 5 times")
    print("| checkout | MB | median s | longest GIL hold seen, ms |")
    print("|---|---:|---:|---:|")
    for root in args.root or [str(ROOT)]:
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.files)],
                             env={**os.environ, "PYTHONPATH": root}, cwd=root, check=True,
                             capture_output=True, text=True)
        f = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {root} | {f['mb']:.1f} | {f['median_s']:.2f} | {f['longest_gap_ms']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
