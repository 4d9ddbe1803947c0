"""What an archived namespace's change log costs each write, in one process.

    python bench/archive_write_path.py [--count 1500] [--rounds 6]

Single-row INSERTs through the server's own `execute()` (inline statements,
the server's default), in rounds that alternate the namespace's change log
on (`ChangeLog.activate`: every commit also puts its change entry, under the
namespace's commit lock) and off. No archiver runs, so this is the write
path alone (the archiver's cycle is bench/archive_cycle_cpu.py). Prints the
process CPU per INSERT of each round, sorted, per setting."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
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
                cpu = time.process_time()
                for _ in range(count):
                    key += 1
                    await _one(cairn, f"INSERT INTO app.t VALUES ({key}, {key}, NULL)")
                out[mode].append((time.process_time() - cpu) / count * 1e6)
    finally:
        await loop.run_in_executor(None, close_state, cairn)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-write-path-"))
    try:
        load0 = os.getloadavg()[0]
        got = asyncio.run(run(tmp / "data", args.count, args.rounds))
        print(f"CPU per single-row INSERT, {args.count} per round (load average "
              f"{load0:.2f} -> {os.getloadavg()[0]:.2f}), rounds sorted:")
        for mode, values in got.items():
            print(f"  change log {mode:3s}: " + " ".join(f"{v:.0f}" for v in sorted(values))
                  + f" us (median {sorted(values)[len(values) // 2]:.0f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
