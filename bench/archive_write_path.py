"""What an archived namespace's change log costs each write, in one process.

    python bench/archive_write_path.py [--count 200] [--rounds 40]

Single-row INSERTs through the server's own `execute()` (inline statements,
the server's default), in rounds that alternate the namespace's change log
on (`ChangeLog.activate`: every commit also puts its change entry, under the
namespace's commit lock) and off. No archiver runs, so this is the write
path alone (the archiver's cycle is bench/archive_cycle_cpu.py). Each round
is a pair (on then off, or off then on, alternating); the event loop
thread's CPU per INSERT (where inline statements run) is taken for each
half. Prints the median and quartiles of the pairs' differences (on minus
off: many short pairs keep the machine's drift out of it) beside each
setting's median."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_statements import _one  # noqa: E402
from server import config as config_mod  # noqa: E402
from server.app import close_state, open_state  # noqa: E402


async def run(data: Path, count: int, rounds: int) -> dict[str, list[float]]:
    cfg = config_mod.from_dict({"storage": {"data_dir": str(data)}, "pgwire": {"port": 0},
                                "server": {"inline_statements": True}})
    loop = asyncio.get_running_loop()
    cairn = await loop.run_in_executor(None, open_state, cfg)
    out: dict[str, list[float]] = {"off": [], "on": []}
    try:
        await _one(cairn, "CREATE NAMESPACE app")
        await _one(cairn, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v BIGINT, payload BYTES)")
        key = 0
        for _ in range(200):  # warm up
            key += 1
            await _one(cairn, f"INSERT INTO app.t VALUES ({key}, {key}, NULL)")
        for r in range(rounds):
            for mode in (("off", "on") if r % 2 else ("on", "off")):
                if mode == "on":
                    cairn.engine.changes.activate("app")
                else:
                    cairn.engine.changes.deactivate("app")
                cpu = time.thread_time()
                for _ in range(count):
                    key += 1
                    await _one(cairn, f"INSERT INTO app.t VALUES ({key}, {key}, NULL)")
                out[mode].append((time.thread_time() - cpu) / count * 1e6)
    finally:
        await loop.run_in_executor(None, close_state, cairn)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200, help="INSERTs per half of a pair")
    ap.add_argument("--rounds", type=int, default=40, help="pairs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-write-path-"))
    try:
        load0 = os.getloadavg()[0]
        got = asyncio.run(run(tmp / "data", args.count, args.rounds))
        diffs = sorted(a - b for a, b in zip(got["on"], got["off"], strict=True))
        q = statistics.quantiles(diffs, n=4)
        print(f"event loop CPU per single-row INSERT, {args.rounds} pairs of {args.count} "
              f"(load average {load0:.2f} -> {os.getloadavg()[0]:.2f}): change log on "
              f"{statistics.median(got['on']):.0f} us, off {statistics.median(got['off']):.0f} us "
              f"(medians); on minus off per pair: median {statistics.median(diffs):+.1f} us, "
              f"quartiles {q[0]:+.1f} .. {q[2]:+.1f} us")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
