"""BACKUP / RESTORE figures (issue 4), every one a ratio or figure taken in one run
against a real `cairn serve` process over HTTP (loopback, aiohttp keep-alive):

1. full BACKUP and full RESTORE of a namespace with >= 1 GiB of Parquet, against
   `cp -r` of its files plus `sha256sum` of them              aim <= 1.5x each
2. DuckDB `EXPORT DATABASE (FORMAT PARQUET)` of the same rows  aim: backup >= 3x faster
3. a second BACKUP after an UPDATE of 1% of the rows + FLUSH   aim < 10% of the first's
   time and bytes_written
4. the longest stall of a concurrent single-row INSERT loop (into a table of the
   namespace being backed up) during a full backup, against the same loop with
   no backup running                                          aim max <= 15 ms
5. peak RSS of the server during backup and restore, at two namespace sizes
   (VmRSS sampled every 10 ms)                                aim < 300 MB, flat
6. a 10k-row namespace: BACKUP and RESTORE over HTTP (median)  aim < 100 ms each

How the data is made (not timed): with no server running, `storage.engine.Engine`
is opened in-process on a fresh data dir; each namespace gets one SHARED table
`t (id BIGINT PRIMARY KEY, v BIGINT, payload BYTES)` whose payload is 1000
random (incompressible) bytes per row, loaded with `insert_arrow` and flushed every
~100 MB (so the 1 GiB namespace has ~11 Parquet files). Then `cairn serve` is
started on that data dir. The 10k-row namespaces are made over HTTP.

Every timed step is preceded by sync(2) so it does not pay for an earlier step's
writeback; the page cache stays warm (the machine has RAM for all of it), so
these are CPU/memory-bound figures, not cold-disk ones. Cairn's backup fsyncs
each object; `cp` does not (the baseline table times `sync` of the copy apart).
The baseline/backup/restore steps run `--rounds` times (fresh target, new
namespace name each round; medians and per-round ratios are reported) because on
a VM the first pass over fresh memory is much slower than later ones. Each run
prints the git revision and the load average: other work on the machine skews
every figure.

    python bench/bench_backup.py [--quick] [--small-mb 250] [--big-mb 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backup_report import MB, PAYLOAD, report
from common import (
    ROOT,
    RssSampler,
    Server,
    first_row,
    load,
    pct,
    session,
    sql,
    timed_sql,
)

sys.path.insert(0, str(ROOT))

from catalog import Catalog, DataFile, Namespace
from server.config import StorageConfig
from storage.engine import Engine

CHUNK_ROWS = 25_000  # rows per insert_arrow call (~25 MB)


# --- building the data (not timed) ------------------------------------------


def _payload(rng: random.Random, rows: int) -> pa.Array:
    data = rng.randbytes(PAYLOAD * rows)
    offsets = pa.array(range(0, (rows + 1) * PAYLOAD, PAYLOAD), pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), rows, [None, offsets, pa.py_buffer(data)])


def build(data_dir: Path, sizes: dict[str, int], flush_mb: int) -> dict[str, dict[str, Any]]:
    """One namespace per entry of `sizes` (name -> MB of payload), built with the
    engine directly. Returns per namespace: rows, Parquet files and bytes, files dir."""
    catalog = Catalog(data_dir / "catalog")
    engine = Engine(catalog, data_dir, StorageConfig(flush_rows=10**9))
    cols = [
        {"name": "id", "type": {"name": "BIGINT"}, "primary_key": True},
        {"name": "v", "type": {"name": "BIGINT"}},
        {"name": "payload", "type": {"name": "BYTES"}},
    ]
    rng = random.Random(4)
    out = {}
    try:
        for ns, mb in sizes.items():
            catalog.put(Namespace(ns))
            t = engine.create_table(ns, "t", "shared", cols)
            assert t is not None
            rows = mb * MB // PAYLOAD + 1
            per_flush = max(1, flush_mb * MB // PAYLOAD)
            done = pending = 0
            while done < rows:
                n = min(CHUNK_ROWS, rows - done, per_flush - pending)
                ids = pa.array(range(done, done + n), pa.int64())
                engine.insert_arrow(
                    ns, "t", pa.table({"id": ids, "v": ids, "payload": _payload(rng, n)})
                )
                done += n
                pending += n
                if pending >= per_flush or done == rows:
                    engine.flush_table(ns, "t")
                    pending = 0
            files = catalog.scan(DataFile, t.uid)
            out[ns] = {
                "rows": rows,
                "files": [str(data_dir / f.path) for f in files],
                "bytes": sum(f.bytes for f in files),
                "dir": data_dir / "files" / t.uid,
            }
    finally:
        engine.close()
        catalog.close()
    return out


# --- baselines ------------------------------------------------------------------


def baseline(src_dir: Path, dest: Path) -> dict[str, float]:
    """Seconds of `cp -r` of the namespace's files dir, of `sync` of the copy, of
    `sha256sum` of the files (coreutils) and of `openssl dgst -sha256` of them.
    cp + sha256sum is the aim's yardstick; the others show where its time goes."""
    shutil.rmtree(dest, ignore_errors=True)
    files = sorted(str(p) for p in src_dir.iterdir())
    out = {}
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(src_dir), str(dest)], check=True)
    t1 = time.perf_counter()
    subprocess.run(["sync", "-f", str(dest)], check=True)
    t2 = time.perf_counter()
    subprocess.run(["sha256sum", *files], check=True, capture_output=True)
    t3 = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", *files], check=True, capture_output=True)
    t4 = time.perf_counter()
    out = {"cp": t1 - t0, "sync": t2 - t1, "sha256sum": t3 - t2, "openssl": t4 - t3}
    out["cp_sha"] = out["cp"] + out["sha256sum"]
    shutil.rmtree(dest, ignore_errors=True)
    return out


def duckdb_export(tmp: Path, files: list[str], rounds: int,
                  syncs: list[float] | None = None) -> list[float]:
    """Load the Parquet files (every stored column) into a plain DuckDB database
    file (not timed), then time `EXPORT DATABASE ... (FORMAT PARQUET)` only;
    `syncs` gets the time of a `sync` of its output after each."""
    import duckdb

    db = tmp / "plain.duckdb"
    con = duckdb.connect(str(db))
    listed = "[" + ", ".join(f"'{p}'" for p in files) + "]"
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet({listed})")
    con.execute("CHECKPOINT")
    out = tmp / "duckdb-export"
    times = []
    for _ in range(rounds):
        os.sync()
        t0 = time.perf_counter()
        con.execute(f"EXPORT DATABASE '{out}' (FORMAT PARQUET)")
        times.append(time.perf_counter() - t0)
        if syncs is not None:
            t0 = time.perf_counter()
            subprocess.run(["sync", "-f", str(out)], check=True)
            syncs.append(time.perf_counter() - t0)
        shutil.rmtree(out, ignore_errors=True)
    con.close()
    db.unlink()
    return times


# --- over HTTP --------------------------------------------------------------------


async def with_rss(pid: int, http: Any, url: str, text: str) -> dict[str, Any]:
    """Run one statement, timing it and sampling the server's RSS meanwhile."""
    before = RssSampler.read_kb(pid) / 1024
    os.sync()
    with RssSampler(pid) as rss:
        ms, body = await timed_sql(http, url, text)
    rows = body["results"][-1]["rows"]
    return {"s": ms / 1000, "row": rows[0] if rows else {}, "body": body, "rss_before": before,
            "rss_peak": rss.peak_mb, "rss_samples": len(rss.samples)}


async def writer(http: Any, url: str, stop: asyncio.Event, out: list[tuple[float, float]]) -> None:
    """Single-row INSERTs in a loop until `stop`: (start time, ms) per INSERT."""
    i = len(out)
    while not stop.is_set():
        t0 = time.perf_counter()
        await sql(http, url, f"INSERT INTO big.events (n, note) VALUES ({i}, 'event {i}')")
        out.append((t0, (time.perf_counter() - t0) * 1000))
        i += 1


async def stall(url: str, seconds: float) -> dict[str, Any]:
    """The INSERT loop alone, then during a full backup of 'big' (fresh target) twice:
    'cold' right after the loop started writing, 'warm' with a SELECT on big.events
    just before the BACKUP (it builds the engine's cached view of the buffer)."""

    def summary(ms: list[float]) -> dict[str, Any]:
        return {"n": len(ms), "p50": pct(ms, 50), "p99": pct(ms, 99), "max": max(ms),
                "over15": sum(1 for x in ms if x > 15)}

    out: dict[str, Any] = {}
    async with session(1) as wr, session(1) as bk:
        warm: list[tuple[float, float]] = []
        stop = asyncio.Event()
        task = asyncio.create_task(writer(wr, url, stop, warm))
        await asyncio.sleep(0.5)
        stop.set()
        await task
        alone: list[tuple[float, float]] = []
        stop = asyncio.Event()
        task = asyncio.create_task(writer(wr, url, stop, alone))
        await asyncio.sleep(max(2.0, seconds))
        stop.set()
        await task
        out["alone"] = summary([ms for _, ms in alone])
        for variant, target in (("cold", "stall_cold"), ("warm", "stall_warm")):
            during: list[tuple[float, float]] = []
            stop = asyncio.Event()
            task = asyncio.create_task(writer(wr, url, stop, during))
            await asyncio.sleep(0.3)
            os.sync()
            if variant == "warm":
                await sql(bk, url, "SELECT count(*) AS n FROM big.events")
            buffered = len(during) + len(alone) + len(warm)  # upper bound on buffered INSERTs
            b0 = time.perf_counter()
            _, body = await timed_sql(bk, url, f"BACKUP DATABASE big TO '{target}'")
            b1 = time.perf_counter()
            stop.set()
            await task
            overlapped = [ms for start, ms in during
                          if b0 <= start <= b1 or b0 <= start + ms / 1000 <= b1]
            out[variant] = {**summary(overlapped), "backup_s": b1 - b0,
                            "buffered": buffered, "rows": first_row(body)["rows"]}
    return out


async def small_namespace(url: str, runs: int) -> dict[str, Any]:
    """10k rows over HTTP (10 x 1000-row INSERTs): flushed (`tenk`) and left in
    the write buffer (`tenkb`, exported to Parquet by the backup)."""
    out: dict[str, Any] = {}
    async with session(1) as http:
        for ns, opts, flush in (("tenk", "", True),
                                ("tenkb", " WITH (flush_rows = 1000000)", False)):
            await sql(http, url, f"CREATE NAMESPACE {ns}; CREATE TABLE {ns}.t "
                                 f"(id BIGINT PRIMARY KEY, name TEXT, score DOUBLE){opts}")
            for k in range(10):
                values = ", ".join(f"({k * 1000 + j}, 'name {k * 1000 + j}', {j}.25)"
                                   for j in range(1000))
                await sql(http, url, f"INSERT INTO {ns}.t VALUES {values}")
            if flush:
                await sql(http, url, f"FLUSH TABLE {ns}.t")
            fresh, again, restore = [], [], []
            backup_id = None
            for i in range(runs):  # a new target each time: a full backup
                ms, body = await timed_sql(http, url, f"BACKUP DATABASE {ns} TO '{ns}_fresh_{i}'")
                fresh.append(ms)
                assert first_row(body)["rows"] == 10_000, body
            for _ in range(runs):  # the same target: unchanged Parquet deduplicated
                ms, body = await timed_sql(http, url, f"BACKUP DATABASE {ns} TO '{ns}_same'")
                again.append(ms)
                backup_id = first_row(body)["backup_id"]
            for i in range(runs):
                ms, body = await timed_sql(
                    http, url, f"RESTORE DATABASE {ns} FROM '{ns}_same' AS {ns}_r{i} "
                               f"WITH (backup_id = '{backup_id}')")
                restore.append(ms)
                assert first_row(body)["rows"] == 10_000, body
            out[ns] = {"backup_fresh": statistics.median(fresh),
                       "backup_same": statistics.median(again),
                       "restore": statistics.median(restore),
                       "all": {"backup_fresh": fresh, "backup_same": again, "restore": restore}}
    return out


async def over_http(srv: Server, tmp: Path, info: dict[str, dict[str, Any]],
                    rounds: int, small_runs: int) -> dict[str, Any]:
    url, pid = srv.url, srv.pid
    res: dict[str, Any] = {"idle_rss": RssSampler.read_kb(pid) / 1024}
    async with session(1) as http:
        await sql(http, url, "CREATE TABLE big.events (n BIGINT, note TEXT)")
        for ns in ("small", "big"):
            res[ns] = []
            for r in range(rounds):
                # Each round: the baselines, a full backup into a fresh target,
                # a restore of it under a new name; rounds > 0 are dropped after.
                one: dict[str, Any] = {"base": baseline(info[ns]["dir"], tmp / "cp")}
                target = f"full_{ns}_{r}"
                one["backup"] = await with_rss(
                    pid, http, url, f"BACKUP DATABASE {ns} TO '{target}'"
                )
                bid = one["backup"]["row"]["backup_id"]
                assert one["backup"]["row"]["rows"] == info[ns]["rows"], one["backup"]
                restore = (f"RESTORE DATABASE {ns} FROM '{target}' AS {ns}_r{r} "
                           f"WITH (backup_id = '{bid}')")
                one["restore"] = await with_rss(pid, http, url, restore)
                assert one["restore"]["row"]["rows"] == info[ns]["rows"], one["restore"]
                await sql(http, url, f"DROP NAMESPACE {ns}_r{r} CASCADE")
                if r > 0:
                    await sql(http, url, f"DROP BACKUP '{bid}' IN '{target}'")
                res[ns].append(one)
        # 1% of rows changed, flushed, backed up again into round 0's target.
        t0 = time.perf_counter()
        res["update"] = await with_rss(pid, http, url, "UPDATE big.t SET v = -v WHERE id % 100 = 0")
        res["update_rows"] = res["update"]["body"]["results"][0]["row_count"]
        await sql(http, url, "FLUSH TABLE big.t")
        res["update_flush_s"] = time.perf_counter() - t0
        res["incremental"] = await with_rss(pid, http, url, "BACKUP DATABASE big TO 'full_big_0'")
    res["tenk"] = await small_namespace(url, small_runs)
    backup_s = statistics.median(one["backup"]["s"] for one in res["big"])
    res["stall"] = await stall(url, backup_s)
    res["final_rss"] = RssSampler.read_kb(pid) / 1024
    return res


# --- report -----------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 16 MB and 64 MB, 1 round, 3 runs of the 10k case")
    ap.add_argument("--small-mb", type=int, default=None, help="payload MB of 'small' (250)")
    ap.add_argument("--big-mb", type=int, default=None, help="payload MB of 'big' (1024)")
    ap.add_argument("--flush-mb", type=int, default=None, help="MB per Parquet file (100)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds of baseline + full backup + full restore, medians taken (3)")
    ap.add_argument("--small-runs", type=int, default=None, help="runs for the 10k-row case (7)")
    ap.add_argument("--dir", default="/tmp", help="where the temp dir goes")
    args = ap.parse_args()
    args.small_mb = args.small_mb or (16 if args.quick else 250)
    args.big_mb = args.big_mb or (64 if args.quick else 1024)
    args.flush_mb = args.flush_mb or (16 if args.quick else 100)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.small_runs = args.small_runs or (3 if args.quick else 7)

    args.load_start = load()
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-backup-", dir=args.dir))
    data = tmp / "data"
    srv = None
    try:
        t0 = time.perf_counter()
        info = build(data, {"small": args.small_mb, "big": args.big_mb}, args.flush_mb)
        build_s = time.perf_counter() - t0
        srv = Server(data, tmp / "server.log")
        res = asyncio.run(over_http(srv, tmp, info, args.rounds, args.small_runs))
        srv.stop()
        srv = None
        duck = duckdb_export(tmp, info["big"]["files"], args.rounds)
        report(args, info, res, duck, build_s)
    except BaseException:
        log = tmp / "server.log"
        if log.exists():
            print("--- server log (tail) ---", file=sys.stderr)
            print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
