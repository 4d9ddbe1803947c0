"""One RESTORE to a time, phase by phase, beside a plain RESTORE of the same
final state (issue 13's "restore to a time" aim), for A/B runs of checkouts in
one sitting.

The state is built once into `--state DIR` (kept for later runs): a base of
`--base-mb` MB (bench_backup.build), archiving to 'rt' (interval 1 s),
`--changes` single-row INSERTs from `--clients` clients (then `--updates`
single-row UPDATEs of base rows: the restore counts the live rows), STOP ARCHIVING, then
a BACKUP of the final state to 'plain'. Each round then starts a server from
each `--root` in turn on that state, with bench/restore_hooks.py imported
first (each restore function's start and end to stderr), restores `AS pitr`
as of the archive's end and `AS plain` from 'plain', checks both hold the same
rows, prints both times, their ratio and the restore to a time's timeline
(seconds from the request), and drops both namespaces again.

    python bench/restore_timeline.py --state /tmp/rt-state [--base-mb 1024]
        [--changes 100000] [--clients 1] [--updates 0] [--rounds 2] [--root A --root B] [--nice -10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, first_row, free_port, session, sql

HOOKS = Path(__file__).resolve().parent / "restore_hooks.py"


class HookedServer:
    """`cairn serve` from `root` with the hooks imported first; stderr to `log`."""

    def __init__(self, root: Path, data: Path, cfg: Path, log: Path, nice: int = 0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        boot = (f"exec(open({str(HOOKS)!r}).read()); import runpy; "
                "runpy.run_module('server.cli', run_name='__main__', alter_sys=True)")
        self._err = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*(["nice", "-n", str(nice)] if nice else []), sys.executable, "-c", boot, "serve",
             "--data-dir", str(data), "--port", str(self.port), "--pg-port", "0",
             "--log-level", "WARNING", "--config", str(cfg)],
            stdout=subprocess.PIPE, stderr=self._err, text=True, cwd=str(root),
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(root)})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("cairn listening"):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}; see {log}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self._err.close()


def load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


async def build_state(state: Path, base_mb: int, changes: int, clients: int,
                      updates: int = 0) -> None:
    from bench.bench_backup import build
    data = state / "data"
    base_rows = build(data, {"app": base_mb}, flush_mb=64)["app"]["rows"]
    srv = HookedServer(ROOT, data, cfg(state), state / "build.log")
    try:
        async with session(2) as http:
            await sql(http, srv.url, "START ARCHIVING DATABASE app TO 'rt' WITH (interval = '1s')")
        per = changes // clients

        async def one(c: int, http: Any) -> None:
            for i in range(per):
                await sql(http, srv.url,
                          f"INSERT INTO app.t VALUES ({10**12 + c * 10**7 + i}, {i}, NULL)")

        t0 = time.perf_counter()
        async with session(clients) as http:
            await asyncio.gather(*(one(c, http) for c in range(clients)))
        print(f"{per * clients} writes from {clients} clients in "
              f"{time.perf_counter() - t0:.1f} s; {load()}", flush=True)
        if updates:  # overwrites of base rows: the restore then counts its live rows
            async with session(1) as http:
                for k in random.Random(6).sample(range(base_rows), updates):
                    await sql(http, srv.url, f"UPDATE app.t SET v = v + 1 WHERE id = {k}")
            print(f"{updates} UPDATEs of base rows; {load()}", flush=True)
        async with session(2) as http:
            row = first_row(await sql(http, srv.url, "STOP ARCHIVING DATABASE app"))
            end = first_row(await sql(http, srv.url,
                                      "SHOW RESTORE POINTS FOR DATABASE app IN 'rt'"))["end_time"]
            await sql(http, srv.url, "BACKUP DATABASE app TO 'plain'")
    finally:
        srv.stop()
    (state / "state.json").write_text(json.dumps({"end": end, "segments": row["segments"]}))


def cfg(state: Path, background_nice: int | None = None) -> Path:
    path = state / "cairn.toml"
    text = f'[backup]\nroots = ["{state / "backups"}"]\n'
    if background_nice is not None:
        text += f"[jobs]\nbackground_nice = {background_nice}\n"
    path.write_text(text)
    return path


def timeline(log: Path, t0: float, t1: float) -> list[str]:
    """The hooks' lines between t0 and t1: each name's first start, last end,
    calls and summed time (seconds from t0)."""
    opened: dict[tuple[str, str], list[float]] = defaultdict(list)
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for raw in log.read_text(errors="replace").splitlines():
        if not raw.startswith("TL "):
            continue
        ev = json.loads(raw[3:])
        if not t0 <= ev["t"] <= t1:
            continue
        key = (ev["th"], ev["n"])
        if ev["e"] == "start":
            opened[key].append(ev["t"])
        elif opened[key]:
            spans[ev["n"]].append((opened[key].pop(), ev["t"]))
    rows = []
    fetched = spans.get("install._fetch_all")
    if fetched:  # the copy, and what the restore spent outside it
        copy_s = fetched[0][1] - fetched[0][0]
        rows.append(f"  the base's copy {copy_s:.3f} s, outside it {t1 - t0 - copy_s:.3f} s")
    for name, s in sorted(spans.items(), key=lambda kv: min(a for a, _ in kv[1])):
        first, last = min(a for a, _ in s), max(b for _, b in s)
        busy = sum(b - a for a, b in s)
        rows.append(f"  {name:34s} {first - t0:6.3f} -> {last - t0:6.3f}  "
                    f"calls {len(s):5d}  summed {busy:6.3f} s")
    return rows


async def one_round(root: Path, state: Path, end: str, tag: str,
                    nice: int = 0) -> tuple[float, float]:
    log = state / ("serve-" + "".join(c if c.isalnum() else "_" for c in tag) + ".log")
    # --nice: the server (and its copier processes) ahead of whatever else the
    # machine runs, background work not lowered: a stand-in for a quiet machine.
    srv = HookedServer(root, state / "data", cfg(state, 0 if nice else None), log, nice)
    try:
        async with session(2) as http:
            os.sync()
            t0 = time.time()
            got = first_row(await sql(
                http, srv.url, f"RESTORE DATABASE app FROM 'rt' AS pitr WITH (as_of = '{end}')"))
            t1 = time.time()
            await asyncio.sleep(0.5)
            p0 = time.time()
            await sql(http, srv.url, "RESTORE DATABASE app FROM 'plain' AS plain")
            p1 = time.time()
            count = "SELECT count(*) AS n, sum(v) AS s FROM {}.t"
            a = first_row(await sql(http, srv.url, count.format("pitr")))
            b = first_row(await sql(http, srv.url, count.format("plain")))
            assert a == b, (a, b)
            assert got["rows"] == a["n"], (got, a)  # the live rows the restore reported
            await sql(http, srv.url, "DROP NAMESPACE pitr CASCADE; DROP NAMESPACE plain CASCADE")
    finally:
        srv.stop()
    print(f"{tag}: restore to a time {t1 - t0:.2f} s, plain {p1 - p0:.2f} s, "
          f"ratio {(t1 - t0) / (p1 - p0):.2f}x; {load()}")
    print("\n".join(timeline(log, t0, t1)), flush=True)
    return t1 - t0, p1 - p0


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--base-mb", type=int, default=1024)
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--updates", type=int, default=0,
                    help="after the INSERTs, this many UPDATEs of base rows (archived too)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--root", type=Path, action="append")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the server at this nice value (negative: needs root), "
                         "with [jobs] background_nice = 0")
    args = ap.parse_args()
    args.state.mkdir(parents=True, exist_ok=True)
    if not (args.state / "state.json").exists():
        await build_state(args.state, args.base_mb, args.changes, args.clients, args.updates)
    st = json.loads((args.state / "state.json").read_text())
    print(f"state: {st['segments']} segments, as_of {st['end']}")
    roots = args.root or [ROOT]
    for r in range(args.rounds):
        for i, root in enumerate(roots):
            await one_round(root.resolve(), args.state, st["end"], f"round {r + 1} {root}#{i}",
                            args.nice)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
