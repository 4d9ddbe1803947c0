"""The CPU of reading every manifest of a target of a namespace with many
tables, as SHOW BACKUPS IN, RESTORE without backup_id and keep_last do it.

A directory target with `--backups` zstd manifests of a namespace of
`--tables` tables (one file each, shaped as BACKUP writes them: two columns
and the two system ones), written by Repository.write_manifest. Per call,
the CPU seconds of the first call in a process that has read none of them
(cold: the memo emptied) and of the next (warm): the listing (keep_last;
SHOW BACKUPS IN's without tables), RESTORE's choice and its read of the chosen manifest, and
`referenced_objects` (every prune). Runs in a child process per `--root`, so
two checkouts compare in one sitting (CPU time, not wall time: the figures
hold on a loaded machine):

    python bench/manifest_listing.py [--tables 3000] [--backups 12] [--root CHECKOUT ...]
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
import inspect, json, os, sys, time
from pathlib import Path
from storage.backup import Repository, envelope, resolve_target
from bench.manifests import backup_doc, column, table_entry

tables, backups, base = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
root = base / "backups"
root.mkdir(parents=True, exist_ok=True)
repo = Repository(resolve_target(str(root / "bk"), [str(root)], {}), compression="zstd")
src = base / "f"
src.write_bytes(os.urandom(2400))
put = repo.put_file(str(src))
cols = [column("k", "INT", key=True), column("v", "TEXT")]
for b in range(backups):
    doc = backup_doc(f"bk-{b:04d}", "app", [
        table_entry(f"t{i}", [{"oid": put.oid, "size": 2400, "sha256": put.sha256}], [cols])
        for i in range(tables)])
    doc["snapshot_at"] = f"2026-01-01T00:00:{b:02d}.000Z"
    repo.write_manifest(doc)

def cpu(fn):
    a = time.process_time()
    fn()
    return time.process_time() - a

out = {}
# SHOW BACKUPS IN's listing (since 78f018a; the whole one before)
shown = {"light": True} if "light" in inspect.signature(repo.listing).parameters else {}
for name, fn in [("listing", lambda: repo.listing("app")),
                 ("SHOW BACKUPS listing", lambda: repo.listing("app", **shown)),
                 ("choose+read",
                  lambda: repo.read_manifest(repo.choose_backup("app")["backup_id"])),
                 ("referenced_objects", repo.referenced_objects)]:
    getattr(envelope, "forget_all", envelope._cache.clear)()  # older checkouts: clear
    out[name + " cold"] = cpu(fn)
    out[name + " warm"] = cpu(fn)
size = sum(p.stat().st_size for p in (root / "bk" / "manifests").iterdir())
out["manifests MB"] = size / 1e6
print(json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=3000)
    parser.add_argument("--backups", type=int, default=12)
    parser.add_argument("--root", action="append", default=[])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {args.backups} backups of {args.tables} "
          "tables; CPU seconds of one call, cold (memo empty) then warm")
    rows = []
    for root in args.root or [str(ROOT)]:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.tables), str(args.backups), tmp],
                env={**os.environ, "PYTHONPATH": root}, cwd=root, check=True,
                capture_output=True, text=True)
        rows.append((root, json.loads(out.stdout.strip().splitlines()[-1])))
    names = list(rows[0][1])
    print("| checkout | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for root, figures in rows:
        print(f"| {root} | " + " | ".join(f"{figures[n]:.2f}" for n in names) + " |")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
