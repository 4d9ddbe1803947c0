"""The first BACKUP after a start against the ones after it (issue 15).

A real `cairn serve` (from `--server-root`, for an A/B) starts on an empty
data directory; once it has been up `--settle` seconds (its job process kept
ready in the background), one client creates a one-row table and runs
`--backups` BACKUPs with keep_last one after the other. Printed per start:
each BACKUP's time, and the kept job process's PSS before the first BACKUP
and after the last (smaps_rollup).

    python bench/first_backup.py [--starts 3] [--backups 4] [--server-root CHECKOUT]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cairn_process import CairnProcess, write_config  # noqa: E402 (after the path)
from bench.common import RssSampler  # noqa: E402


def timed(srv: CairnProcess, text: str) -> float:
    """One statement (raises on an error answer); its time in ms."""
    t0 = time.perf_counter()
    srv.ok(text)
    return (time.perf_counter() - t0) * 1000


def job_pss_mb(pid: int) -> float:
    """PSS of the server's job processes (storage.jobchild), MB."""
    total = 0
    for kid in RssSampler.descendants(pid):
        try:
            if b"storage.jobchild" in Path(f"/proc/{kid}/cmdline").read_bytes():
                total += RssSampler.pss_kb(kid)
        except OSError:
            continue
    return total / 1024


def one_start(root: Path, backups: int, settle: float) -> tuple[list[float], float, float]:
    work = Path(tempfile.mkdtemp(prefix="cairn-first-backup-"))
    try:
        cfg = write_config(work / "cairn.toml", work / "backups", 0)
        srv = CairnProcess(work / "data", cfg, work / "server.log", root=root).start()
        try:
            time.sleep(settle)
            before = job_pss_mb(srv.pid)
            srv.ok("CREATE NAMESPACE app; "
                   "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT); "
                   "INSERT INTO app.t VALUES (1, 'a')")
            took = [timed(srv, "BACKUP DATABASE app TO 'first' WITH (keep_last = 2)")
                    for _ in range(backups)]
            time.sleep(0.5)  # the job process's clean-up after the last call
            return took, before, job_pss_mb(srv.pid)
        finally:
            srv.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--backups", type=int, default=4)
    ap.add_argument("--settle", type=float, default=4.0,
                    help="seconds between the server's start and the first statement")
    ap.add_argument("--server-root", default=str(ROOT), help="checkout the server runs from")
    args = ap.parse_args()
    print(f"first_backup: server from {args.server_root}, {args.starts} starts, "
          f"{args.backups} BACKUPs each")
    print("| start | first BACKUP ms | the next, ms | job process PSS before / after, MB |")
    print("|---|---:|---|---|")
    firsts, rest = [], []
    for i in range(args.starts):
        took, before, after = one_start(Path(args.server_root), args.backups, args.settle)
        firsts.append(took[0])
        rest += took[1:]
        print(f"| {i} | {took[0]:.0f} | {', '.join(f'{t:.0f}' for t in took[1:])} "
              f"| {before:.0f} / {after:.0f} |")
    print(f"\nmedian first BACKUP {statistics.median(firsts):.0f} ms, "
          f"the next {statistics.median(rest):.0f} ms")


if __name__ == "__main__":
    main()
