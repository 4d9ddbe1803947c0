"""Archived ALTERs replayed: RESTORE ... WITH (as_of) and VERIFY ARCHIVE of a
window holding V schema versions, against the ALTERs themselves.

A real `cairn serve` (from `--server-root`, for an A/B); per count, a namespace
with one table is archived, (V - 1) / 2 ADD COLUMN / DROP COLUMN pairs are
sent (50 a request), and once they are shipped the window's end is restored
as of and the archive verified. Each replayed ALTER checked the whole history
again (O(V^2) a window: 20-29 s at 800 versions); storage/archive/history.py
checks each version once. Printed per count: the ALTERs' time, RESTORE as_of,
VERIFY ARCHIVE, and (for scale) BACKUP and a plain RESTORE of the same state.

    python bench/bench_replay_alters.py [--versions 200,800,1600] [--server-root CHECKOUT]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cairn_process import CairnProcess, write_config  # noqa: E402 (after the path)


def timed(srv: CairnProcess, text: str, timeout: float = 3600.0) -> float:
    """One statement (raises on an error answer); its time in s."""
    t0 = time.perf_counter()
    status, body = srv.post(text, timeout)
    if status != 200:
        raise RuntimeError(f"{text[:120]!r} failed: {status} {body.get('error')}")
    return time.perf_counter() - t0


def one(srv: CairnProcess, versions: int) -> dict[str, float]:
    ns = f"v{versions}"
    srv.ok(f"CREATE NAMESPACE {ns}; CREATE TABLE {ns}.t (k INT PRIMARY KEY, v INT); "
           f"INSERT INTO {ns}.t VALUES (1, 1)")
    srv.ok(f"START ARCHIVING DATABASE {ns} TO 'arch_{ns}' WITH (interval = '500ms')")
    stmts = []
    for i in range(versions // 2):
        stmts += [f"ALTER TABLE {ns}.t ADD COLUMN c{i} INT DEFAULT {i}",
                  f"ALTER TABLE {ns}.t DROP COLUMN c{i}"]
    out = {"alters": 0.0}
    for j in range(0, len(stmts), 50):
        out["alters"] += timed(srv, "; ".join(stmts[j:j + 50]))
    srv.ok(f"INSERT INTO {ns}.t VALUES (2, 2)")
    time.sleep(1.5)  # past one interval: every change shipped
    end = srv.rows(f"SHOW RESTORE POINTS FOR DATABASE {ns} IN 'arch_{ns}'")[0]["end_time"]
    out["restore_as_of"] = timed(
        srv, f"RESTORE DATABASE {ns} FROM 'arch_{ns}' AS {ns}_r WITH (as_of = '{end}')")
    out["verify_archive"] = timed(srv, f"VERIFY ARCHIVE FOR DATABASE {ns} IN 'arch_{ns}'")
    out["backup"] = timed(srv, f"BACKUP DATABASE {ns} TO 'bk_{ns}'")
    out["restore_backup"] = timed(srv, f"RESTORE DATABASE {ns} FROM 'bk_{ns}' AS {ns}_b")
    got = srv.rows(f"SELECT count(*) AS n FROM {ns}_r.t")[0]["n"]
    assert got == 2, got  # the restore is whole
    srv.ok(f"STOP ARCHIVING DATABASE {ns}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", default="200,800,1600", help="schema versions, comma-separated")
    ap.add_argument("--server-root", type=Path, default=ROOT, help="checkout the server runs from")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-replay-alters-"))
    try:
        cfg = write_config(work / "cairn.toml", work / "backups", 0)
        srv = CairnProcess(work / "data", cfg, work / "server.log",
                           root=args.server_root.resolve()).start()
        try:
            print(f"server from {args.server_root}")
            for v in (int(x) for x in args.versions.split(",")):
                t = one(srv, v)
                print(f"versions {v + 1:5d}: ALTERs live {t['alters']:6.1f} s  "
                      f"RESTORE as_of {t['restore_as_of']:6.1f} s  "
                      f"VERIFY ARCHIVE {t['verify_archive']:6.1f} s  "
                      f"(BACKUP {t['backup']:.1f} s, RESTORE of it {t['restore_backup']:.1f} s)",
                      flush=True)
        finally:
            srv.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
