"""Resumable after a crash (issue 16): kill `cairn serve` at ~90% of a large
backup, restart it, back up again, and print the fraction of the backup's bytes
written again. Aim: at most 15%.

The first server is throttled (`[backup] throttle_bytes_per_second`) so the
backup lasts about `--seconds`; it is SIGKILLed once system.jobs shows
`fraction_completed >= --at`. The restarted server (no throttle) keeps what
the dead backup stored (`[backup] resume_window`, default 24h), so the second
backup writes only what is missing. `--window 0` shows the old behaviour
(everything written again) for comparison.

    python bench/bench_resume.py                 # ~256 MiB (~2 min)
    python bench/bench_resume.py --mb 32         # smoke run (~20 s)
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import Server, dir_bytes, first_row, load, machine, print_table, run, session, sql

ROWS_PER_FILE = 200_000  # ~11 MB of zstd Parquet per flushed file


def write_config(path: Path, root: Path, throttle: int, window: str) -> Path:
    path.write_text(f'[backup]\nroots = ["{root}"]\nthrottle_bytes_per_second = {throttle}\n'
                    f'resume_window = "{window}"\n')
    return path


async def fill(http: aiohttp.ClientSession, url: str, mb: int) -> int:
    await sql(http, url, "CREATE NAMESPACE app; "
                         "CREATE TABLE app.t (id BIGINT PRIMARY KEY, data TEXT)")
    files = max(4, round(mb / 11))
    for f in range(files):
        lo, hi = f * ROWS_PER_FILE, (f + 1) * ROWS_PER_FILE
        await sql(http, url,
                  f"INSERT INTO app.t SELECT i, md5(i::VARCHAR) || md5((i * 7)::VARCHAR) || "
                  f"md5((i * 13)::VARCHAR) FROM range({lo}, {hi}) r(i); FLUSH TABLE app.t")
    # A few buffered rows too, exported to a Parquet file by every backup.
    await sql(http, url, "INSERT INTO app.t VALUES (-1, 'buffered'), (-2, 'also buffered')")
    return files


async def kill_at(http: aiohttp.ClientSession, srv: Server, at: float) -> dict[str, Any]:
    body = await sql(http, srv.url, "BACKUP DATABASE app TO 'nightly' WITH (detached = true)")
    job_id = first_row(body)["job_id"]
    while True:
        row = first_row(await sql(http, srv.url, f"SHOW JOB '{job_id}'"))
        if row["fraction_completed"] >= at or row["status"] not in ("queued", "running"):
            break
        time.sleep(0.02)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(30)
    srv.stop()
    return row


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-resume-"))
    root = work / "backups"
    try:
        print(machine())
        print(load())
        fast = write_config(work / "fast.toml", root, 0, args.window)
        srv = Server(work / "data", config=fast)
        async with session() as http:
            files = await fill(http, srv.url, args.mb)
            answer = await sql(http, srv.url, "SELECT sum(bytes) AS b FROM system.tables")
            size = first_row(answer)["b"]
        srv.stop()
        throttle = max(1, int(size / args.seconds))
        slow = write_config(work / "slow.toml", root, throttle, args.window)
        srv = Server(work / "data", config=slow)
        async with session() as http:
            at_kill = await kill_at(http, srv, args.at)
        stored = dir_bytes(root / "nightly" / "objects")

        srv = Server(work / "data", config=fast)
        async with session() as http:
            t0 = time.perf_counter()
            again = first_row(await sql(http, srv.url, "BACKUP DATABASE app TO 'nightly'"))
            took = time.perf_counter() - t0
            dead = first_row(await sql(http, srv.url, f"SHOW JOB '{at_kill['job_id']}'"))
            verified = first_row(await sql(http, srv.url,
                                           f"VERIFY BACKUP '{again['backup_id']}'"))
        srv.stop()
        fraction = again["bytes_written"] / again["bytes"]
        print(f"{files} flushed files + buffered rows, {again['bytes'] / 2**20:.1f} MiB; "
              f"resume_window = {args.window!r}")
        print_table(["step", "figure"], [
            ["killed at (fraction_completed)", f"{at_kill['fraction_completed']:.3f}"],
            ["stored by the killed backup", f"{stored / 2**20:.1f} MiB"],
            ["dead job's result", str(dead["result"])[:100]],
            ["second backup: bytes", f"{again['bytes'] / 2**20:.1f} MiB"],
            ["second backup: bytes_written", f"{again['bytes_written'] / 2**20:.2f} MiB"],
            ["written again (aim <= 15%)", f"{fraction:.1%}"],
            ["second backup took", f"{took:.2f} s"],
            ["second backup verifies", str(verified["is_valid"])],
        ])
        print(load())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256, help="size of the namespace")
    parser.add_argument("--at", type=float, default=0.9, help="kill at this fraction")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="how long the throttled backup would take")
    parser.add_argument("--window", default="24h", help="[backup] resume_window")
    run(main(parser.parse_args()))
