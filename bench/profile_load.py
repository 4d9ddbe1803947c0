"""Where a request's server CPU goes under the 16-client load (issue 15).

Starts `cairn serve` with its main thread (the event loop, where one-row
statements run) under cProfile, preloads and flushes a table as
`bench/load.py` does, profiles only the timed load (`load.py`'s clients, no
jobs), and prints each component's share of the profile and its share of the
server CPU per request measured over the same seconds (`/proc`).

cProfile times by the wall clock, so time the thread spent runnable but not
running (other processes on the CPUs) lands in whatever was running: mostly
system calls (the socket write, the lock timing's `thread_time`). Those are
taken out of the total (`--keep-waits` keeps them); the shares are of the
rest. Profiling makes every Python call dearer, so read the shares, not the
absolute figures.

    python bench/profile_load.py [--seconds 15] [--server-root DIR] [--save FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402 (after the path)

# Run inside the server process: SIGUSR1 starts the profile, SIGUSR2 writes it.
WRAPPER = """
import cProfile, os, runpy, signal, sys
profile = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *a: profile.enable())
signal.signal(signal.SIGUSR2, lambda *a: (profile.disable(), profile.dump_stats(os.environ["OUT"])))
sys.argv = ["cairn"] + sys.argv[1:]
runpy.run_module("server.cli", run_name="__main__")
"""

# Calls whose wall time is mostly waiting for a CPU (see the docstring): the
# lock timing's thread CPU clock, and the response's write to the socket.
def _is_lock_wait(fn: str) -> bool:
    return "thread_time" in fn


def _is_write_wait(path: str, fn: str) -> bool:
    return (fn == "_writelines" and "aiohttp" in path) or fn in (
        "<method 'send' of '_socket.socket' objects>",
        "<method 'write' of 'uvloop.loop.UVStream' objects>",
        "<method 'writelines' of 'uvloop.loop.UVStream' objects>")


async def _drive(url: str, pid: int, clients: int, seconds: float) -> tuple[int, float]:
    rng = random.Random(8)
    report = load.LoadReport(clients, seconds, 50_000)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 2)) as http:
        await load._post(http, url, "CREATE NAMESPACE load; "
                         "CREATE TABLE load.t (id BIGINT PRIMARY KEY, client INT, v TEXT)")
        for first in range(0, 50_000, 5000):
            values = ", ".join(f"({-(first + i) - 1}, -1, '{rng.randbytes(50).hex()}')"
                               for i in range(5000))
            await load._post(http, url, f"INSERT INTO load.t VALUES {values}")
        await load._post(http, url, "FLUSH TABLE load.t")
        acked: list[int] = []
        os.kill(pid, signal.SIGUSR1)
        cpu0 = load.cpu_seconds(pid)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*[load._client(i + 1, http, url, deadline, report, acked,
                                            random.Random(8000 + i)) for i in range(clients)])
        cpu = load.cpu_seconds(pid) - cpu0
        os.kill(pid, signal.SIGUSR2)
    return len(report.samples), cpu


def components(stats: pstats.Stats, keep_waits: bool) -> list[tuple[str, float]]:
    """(component, share of the profile) along the request path."""
    raw = stats.stats  # type: ignore[attr-defined]

    def cum(path: str, fn: str) -> float:
        return float(sum(v[3] for k, v in raw.items() if k[2] == fn and path in k[0]))

    total = float(sum(v[2] for v in raw.values()))
    lock_w = write_w = 0.0
    if not keep_waits:
        lock_w = float(sum(v[2] for k, v in raw.items() if _is_lock_wait(k[2])))
        write_w = float(sum(v[2] for k, v in raw.items() if _is_write_wait(k[0], k[2])))
        total -= lock_w + write_w
    mm, hs = cum("server/app.py", "metrics_middleware"), cum("server/app.py", "handle_sql")
    ex, rs = cum("server/executor.py", "execute"), cum("server/executor.py", "run_statement")
    parse = cum("sqlgrammar/parser.py", "iter_script")
    rd, au = cum("server/app.py", "read_sql_request"), cum("server/auth.py", "authenticate")
    jr, tj = cum("aiohttp/web_response.py", "json_response"), cum("server/result.py", "to_json")
    # A fast-path statement runs from its typed description (storage/fast.py),
    # anything else (and a fast SELECT that falls back to its tree) as before.
    ins = cum("storage/dml.py", "insert") + cum("storage/fast.py", "insert_rows")
    sel = cum("storage/engine.py", "query") + cum("storage/fast.py", "select")
    # The lock timing's waits, split as the table-lock holds are: 3 per INSERT,
    # 1 per point SELECT (all of them inside the middlewares).
    rows = [
        ("aiohttp, the event loop, sockets", total - (mm - lock_w)),
        ("the middlewares (metrics, errors)", mm - hs),
        ("reading the request (auth, body, JSON)", rd + au),
        ("parsing (the fast path)", parse),
        ("executor (session, dispatch, role)", ex - rs - parse),
        ("INSERT in storage (dml.insert, fast.insert_rows)", ins - lock_w * 3 / 4),
        ("point SELECT in storage (Engine.query, fast.select)", sel - lock_w / 4),
        ("the rest of the statement (run_query, Result)", rs - ins - sel),
        ("the answer's JSON", jr + tj),
        ("the rest of handle_sql", hs - ex - rd - au - jr - tj),
    ]
    return [(name, s / total) for name, s in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--server-root", default=str(ROOT))
    parser.add_argument("--keep-waits", action="store_true",
                        help="keep the wall time of the waiting system calls in the shares")
    parser.add_argument("--save", help="also copy the raw profile (pstats) to this file")
    args = parser.parse_args()
    root = Path(args.server_root).resolve()
    with tempfile.TemporaryDirectory(prefix="cairn-profile-") as tmp:
        work = Path(tmp)
        cfg = work / "cairn.toml"
        cfg.write_text(f'[backup]\nroots = ["{work / "backups"}"]\n')
        out = work / "server.pstats"
        env = {**os.environ, "OUT": str(out), "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, "serve", "--data-dir", str(work / "data"),
             "--config", str(cfg), "--port", "0", "--pg-port", "0", "--log-level", "WARNING"],
            stdout=subprocess.PIPE, text=True, cwd=str(root), env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.startswith("cairn listening on"):
                raise RuntimeError(f"server did not start: {line!r}")
            load0 = os.getloadavg()[0]
            n, cpu = asyncio.run(_drive(line.split()[-1], proc.pid, args.clients, args.seconds))
            for _ in range(100):
                if out.exists():
                    break
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        if args.save:
            shutil.copyfile(out, args.save)
        per = 1000 * cpu / max(1, n)
        print(f"server from {root}: {n} requests in {args.seconds:g} s, {per:.2f} ms of server "
              f"CPU per request (profiled), load average {load0:.1f} / {os.getloadavg()[0]:.1f}")
        print("\n| component | share | of the CPU per request |\n|---|---:|---:|")
        for name, share in components(pstats.Stats(str(out)), args.keep_waits):
            print(f"| {name} | {100 * share:.1f}% | {share * per:.3f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
