"""CPU per statement in-process: `server.executor.execute` in a loop, no HTTP.

The same two statements as `bench/load.py` (a single-row INSERT and a point
SELECT of an inserted key) against a table preloaded and flushed the same way,
run through the server's own `execute()` with its thread pool, and the answer
turned into the response's JSON. Prints process CPU per statement: each kind
alone (sequential), then `--tasks` closed loops at once, half and half (the
hand-offs between the event loop and the statement threads as under load).

    python bench/bench_statements.py [--count 2000] [--tasks 16] [--preload 50000]
    python bench/bench_statements.py --root /path/to/other/checkout   # A/B
    python bench/bench_statements.py --inline     # [server] inline_statements = true (else false)

`--root` imports the server from another checkout (same data, same loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="statements per figure")
    parser.add_argument("--tasks", type=int, default=16, help="closed loops in the mixed figure")
    parser.add_argument("--preload", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3, help="repeat every figure, print each")
    parser.add_argument("--root", default=str(ROOT), help="the checkout to import the server from")
    parser.add_argument("--inline", action="store_true",
                        help="[server] inline_statements = true (one-row statements on the loop)")
    return parser.parse_args()


ARGS = _args() if __name__ == "__main__" else None
sys.path.insert(0, str(Path(ARGS.root).resolve()) if ARGS else str(ROOT))

from server import config as config_mod  # noqa: E402
from server.app import close_state, open_state  # noqa: E402
from server.executor import execute  # noqa: E402
from server.session import Session  # noqa: E402
from server.state import Cairn  # noqa: E402


def _revision(root: str) -> str:
    try:
        return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


async def _one(cairn: Cairn, sql: str) -> Any:
    outcome = await execute(cairn, Session(user_id=None), sql)
    if outcome.error is not None:
        raise RuntimeError(f"{sql!r}: {outcome.error.error.code} {outcome.error.error.message}")
    # What the HTTP handler does with it (aiohttp's json_response uses json.dumps).
    return json.dumps({"status": "success", "results": [r.to_json() for r in outcome.results],
                       "took": 0.0})


class Work:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_id = 10**9
        self.acked: list[int] = []
        self.payload = self.rng.randbytes(32).hex()

    def insert(self) -> tuple[str, int]:
        self.next_id += 1
        return f"INSERT INTO load.t VALUES ({self.next_id}, 1, '{self.payload}')", self.next_id

    def select(self) -> str:
        key = self.acked[self.rng.randrange(len(self.acked))]
        return f"SELECT id, client, v FROM load.t WHERE id = {key}"


async def _sequential(cairn: Cairn, work: Work, kind: str, count: int) -> float:
    cpu0 = time.process_time()
    for _ in range(count):
        if kind == "insert":
            sql, key = work.insert()
            await _one(cairn, sql)
            work.acked.append(key)
        else:
            await _one(cairn, work.select())
    return (time.process_time() - cpu0) / count * 1000


async def _mixed(cairn: Cairn, work: Work, tasks: int, count: int) -> tuple[float, float]:
    left = [count]

    async def loop() -> None:
        while left[0] > 0:
            left[0] -= 1
            if work.rng.random() < 0.5:
                sql, key = work.insert()
                await _one(cairn, sql)
                work.acked.append(key)
            else:
                await _one(cairn, work.select())

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    return (time.process_time() - cpu0) / count * 1000, count / (time.perf_counter() - wall0)


async def _main(args: argparse.Namespace, data: Path) -> None:
    settings: dict[str, Any] = {"storage": {"data_dir": str(data)}, "pgwire": {"port": 0}}
    # Set either way: the server's default is true (server/config.py).
    settings["server"] = {"inline_statements": bool(args.inline)}
    cfg = config_mod.from_dict(settings)
    cairn = await asyncio.get_running_loop().run_in_executor(None, open_state, cfg)
    try:
        await _one(cairn, "CREATE NAMESPACE load")
        await _one(cairn, "CREATE TABLE load.t (id BIGINT PRIMARY KEY, client INT, v TEXT)")
        rng = random.Random(8)
        for first in range(0, args.preload, 5000):
            values = ", ".join(f"({-(first + i) - 1}, -1, '{rng.randbytes(50).hex()}')"
                               for i in range(min(5000, args.preload - first)))
            await _one(cairn, f"INSERT INTO load.t VALUES {values}")
        await _one(cairn, "FLUSH TABLE load.t")
        work = Work(8)
        await _sequential(cairn, work, "insert", 200)  # warm up, and keys to select
        await _sequential(cairn, work, "select", 200)
        print(f"server code from {args.root} ({_revision(args.root)}), preload {args.preload}, "
              f"{args.count} statements per figure{', inline' if args.inline else ''}")
        print("| round | load avg | INSERT ms CPU | point SELECT ms CPU | "
              f"mixed, {args.tasks} tasks: ms CPU / statement | mixed statements/s |")
        print("|---|---|---|---|---|---|")
        for r in range(args.rounds):
            load = os.getloadavg()[0]
            ins = await _sequential(cairn, work, "insert", args.count)
            sel = await _sequential(cairn, work, "select", args.count)
            mixed, rate = await _mixed(cairn, work, args.tasks, args.count)
            print(f"| {r + 1} | {load:.2f} | {ins:.3f} | {sel:.3f} | {mixed:.3f} | {rate:.0f} |",
                  flush=True)
    finally:
        await asyncio.get_running_loop().run_in_executor(None, close_state, cairn)


def main() -> int:
    assert ARGS is not None
    tmp = Path(tempfile.mkdtemp(prefix="cairn-stmts-"))
    try:
        asyncio.run(_main(ARGS, tmp / "data"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
