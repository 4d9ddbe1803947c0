"""The CPU a job thread spends reading a target's manifests, per call.

A directory target with `--manifests` unencrypted manifests of `--files`
files each (written by Repository.write_manifest, objects stored); per call,
the median CPU time over 15 calls of what the jobs ask of it: the listing
(keep_last, SHOW BACKUPS, RESTORE's choice, bases_of), one manifest with and
without its body (DROP, VERIFY), and `referenced_objects` (every prune). Runs
in a child process per `--root`, so two checkouts compare in one sitting:

    python bench/manifest_reads.py [--manifests 4] [--files 3] [--root CHECKOUT ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, statistics, sys, time
from pathlib import Path
from types import SimpleNamespace
from storage.backup import Repository, resolve_target
from tests.storage_backup.conftest import backup_doc, table_doc

count, files, base = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
root = base / "backups"
root.mkdir(parents=True, exist_ok=True)
repo = Repository(resolve_target(str(root / "bk"), [str(root)], {}), compression="none")
src = base / "src"
src.mkdir(exist_ok=True)
sources = []
for i in range(files):
    p = src / f"f{i}"
    p.write_bytes(os.urandom(1000 + i))
    put = repo.put_file(str(p))
    sources.append(SimpleNamespace(sha256=put.oid, size=p.stat().st_size))
ids = [f"bk-{b:04d}" for b in range(count)]
for backup_id in ids:
    repo.write_manifest(backup_doc(backup_id, [table_doc("t", sources)], "load"))

def cpu(fn):
    fn()
    out = []
    for _ in range(15):
        a = time.thread_time()
        fn()
        out.append(time.thread_time() - a)
    return 1000 * statistics.median(out)

print(json.dumps({
    "list_manifests": cpu(lambda: repo.list_manifests("load")),
    "read_manifest": cpu(lambda: repo.read_manifest(ids[0])),
    "read_manifest header": cpu(lambda: repo.read_manifest(ids[0], require_body=False)),
    "referenced_objects": cpu(repo.referenced_objects),
}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifests", type=int, default=4)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--root", action="append", default=[])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {args.manifests} manifests of "
          f"{args.files} files; CPU ms per call, median of 15")
    rows = []
    for root in args.root or [str(ROOT)]:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.manifests), str(args.files), tmp],
                env={**os.environ, "PYTHONPATH": root}, cwd=root, check=True,
                capture_output=True, text=True)
        rows.append((root, json.loads(out.stdout.strip().splitlines()[-1])))
    names = list(rows[0][1])
    print("| checkout | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for root, figures in rows:
        print(f"| {root} | " + " | ".join(f"{figures[n]:.3f}" for n in names) + " |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
