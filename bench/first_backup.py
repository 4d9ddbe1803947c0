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
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, RssSampler, Server  # noqa: E402 (after the path)


def post(port: int, text: str) -> float:
    """One statement; its time in ms (raises on an error answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.request("POST", "/api/sql", json.dumps({"sql": text}),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    took = (time.perf_counter() - t0) * 1000
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{text}: {resp.status} {body[:200]!r}")
    return took


def job_pss_mb(pid: int) -> float:
    """PSS of the server's job processes (storage.jobchild), MB."""
    total = 0
    for kid in RssSampler.descendants(pid):
        try:
            if b"storage.jobchild" not in Path(f"/proc/{kid}/cmdline").read_bytes():
                continue
            for line in Path(f"/proc/{kid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def one_start(root: Path, backups: int, settle: float) -> tuple[list[float], float, float]:
    work = Path(tempfile.mkdtemp(prefix="cairn-first-backup-"))
    try:
        srv = Server(work / "data", work / "server.log", root=root)
        try:
            port = int(srv.url.rsplit(":", 1)[1])
            time.sleep(settle)
            before = job_pss_mb(srv.pid)
            post(port, "CREATE NAMESPACE app")
            post(port, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)")
            post(port, "INSERT INTO app.t VALUES (1, 'a')")
            took = [post(port, "BACKUP DATABASE app TO 'first' WITH (keep_last = 2)")
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
