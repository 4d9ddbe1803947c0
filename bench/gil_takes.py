"""Who takes the server's GIL beside the event loop during BACKUPs (issue 15).

With 16 clients the server's main thread always has a request to run, so each
time another of its threads takes the GIL (after a system call, a pyarrow call
that let it go, a lock or queue wait) the loop may wait for it: the main
thread's sleeps a second in load.py's BACKUP windows follow these takes
(docs/performance.md, "The event loop's GIL beside a BACKUP").

Runs `load.py --jobs backup` (BACKUP with keep_last = 3 and a quiet window as
long, in turn) against a real `cairn serve`, and `perf record` of a uprobe on
CPython's `take_gil` (with DWARF call chains) in the server for `--record`
seconds of it. Printed: the BACKUPs in the run, every other thread's takes per
BACKUP (the main thread's own are left out), and the most common C call sites
that took it. Needs perf and root (uprobes), and a libpython with symbols.

    python bench/gil_takes.py [--server-root CHECKOUT] [--seconds 30] [--record 15]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"take_gil", "PyEval_RestoreThread", "PyEval_AcquireThread", "PyGILState_Ensure",
        "[unknown]"}


def libpython() -> str:
    name = sysconfig.get_config_var("LDLIBRARY") or "libpython3.11.so"
    return os.path.join(sysconfig.get_config_var("LIBDIR") or "", name)


def sites(script: str, main_tid: int) -> tuple[collections.Counter[str], int]:
    """(takes by call site, takes) of every thread but the main one."""
    counted: collections.Counter[str] = collections.Counter()
    total = 0
    tid: int | None = None
    frames: list[str] = []
    for line in [*script.splitlines(), ""]:
        text = line.strip()
        if not text:
            if tid is not None and tid != main_tid:
                total += 1
                counted[" <- ".join([f for f in frames if f not in SKIP][:3])] += 1
            tid, frames = None, []
            continue
        parts = text.split(None, 1)
        if tid is None:
            tid = int(parts[0])
        elif len(parts) == 2:
            frames.append(parts[1].split("+")[0])
    return counted, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server-root", default=str(ROOT))
    ap.add_argument("--seconds", type=float, default=30.0, help="load.py's timed load")
    ap.add_argument("--record", type=float, default=15.0, help="seconds of perf record")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    lib = libpython()
    subprocess.run(["perf", "probe", "-q", "-x", lib, "take_gil"], check=False,
                   capture_output=True)
    with tempfile.TemporaryDirectory(prefix="gil_takes-") as tmp:
        pid_file, data = Path(tmp) / "server.pid", Path(tmp) / "takes.perf"
        load = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "load.py"), "--clients", "16",
             "--seconds", str(args.seconds), "--preload", "50000", "--jobs", "backup",
             "--pid-file", str(pid_file), "--server-root", args.server_root],
            stdout=subprocess.PIPE, text=True)
        while not pid_file.exists() or not pid_file.read_text():
            if load.poll() is not None:
                print("load.py ended before its timed load", file=sys.stderr)
                return 1
            time.sleep(0.2)
        pid = int(pid_file.read_text())
        time.sleep(2)
        subprocess.run(["perf", "record", "-q", "-o", str(data), "-e",
                        "probe_libpython3:take_gil", "--call-graph", "dwarf,8192", "-p",
                        str(pid), "--", "sleep", str(args.record)], check=True,
                       capture_output=True)
        out, _ = load.communicate()
        script = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid,ip,sym"],
                                capture_output=True, text=True).stdout
    found = re.search(r"backup jobs run during the load \| (\d+)", out)
    if found is None:
        print(out, file=sys.stderr)
        return 1
    backups = int(found.group(1))
    per_second = backups / args.seconds
    counted, total = sites(script, pid)
    in_record = per_second * args.record
    print(f"server from {args.server_root}; load.py --jobs backup, {args.seconds:.0f} s: "
          f"{backups} BACKUPs ({per_second:.2f} a second); perf for {args.record:.0f} s")
    for line in out.splitlines():
        if line.startswith(("| throughput", "| p99 while a BACKUP")) or "sleeps a second" in line:
            print(line)
    print(f"\nthe server's other threads took the GIL {total} times: "
          f"{total / max(in_record, 1):.0f} a BACKUP")
    print("\n| takes a BACKUP | where (C) |\n|---:|---|")
    for site, n in counted.most_common(args.top):
        print(f"| {n / max(in_record, 1):.1f} | {site} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
