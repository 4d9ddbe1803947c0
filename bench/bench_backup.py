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

from common import (
    ROOT,
    RssSampler,
    Server,
    first_row,
    load,
    machine,
    pct,
    print_table,
    session,
    sql,
    timed_sql,
)

sys.path.insert(0, str(ROOT))

from catalog import Catalog, DataFile, Namespace
from server.config import StorageConfig
from storage.engine import Engine

MB = 1024 * 1024
PAYLOAD = 1000  # bytes of random data per row
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


def duckdb_export(tmp: Path, files: list[str], rounds: int) -> list[float]:
    """Load the Parquet files (every stored column) into a plain DuckDB database
    file (not timed), then time `EXPORT DATABASE ... (FORMAT PARQUET)` only."""
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


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def med(values: Any) -> float:
    return statistics.median(list(values))


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """Medians over rounds, and per-round ratios (each against its own baseline)."""
    out: dict[str, Any] = {}
    for ns in ("small", "big"):
        rounds = res[ns]
        base = {k: med(r["base"][k] for r in rounds) for k in rounds[0]["base"]}
        m: dict[str, Any] = {"base": base}
        for op in ("backup", "restore"):
            m[op] = med(r[op]["s"] for r in rounds)
            m[op + "_ratios"] = [r[op]["s"] / r["base"]["cp_sha"] for r in rounds]
            m[op + "_ratio"] = med(m[op + "_ratios"])
            m[op + "_ratio_openssl"] = med(
                r[op]["s"] / (r["base"]["cp"] + r["base"]["openssl"]) for r in rounds)
            m[op + "_rss_before"] = rounds[0][op]["rss_before"]
            m[op + "_rss_peak"] = max(r[op]["rss_peak"] for r in rounds)
            m[op + "_samples"] = sum(r[op]["rss_samples"] for r in rounds)
        m["bytes_written"] = rounds[0]["backup"]["row"]["bytes_written"]
        m["files"] = rounds[0]["backup"]["row"]["files"]
        out[ns] = m
    return out


def report(args: argparse.Namespace, info: dict[str, Any], res: dict[str, Any],
           duck: list[float], build_s: float) -> None:
    sm = summarize(res)
    big, small = sm["big"], sm["small"]
    gib = info["big"]["bytes"] / 2**30
    print(f"bench_backup: namespace 'small' {info['small']['bytes'] / MB:.0f} MB in "
          f"{len(info['small']['files'])} Parquet files, 'big' {info['big']['bytes'] / MB:.0f} MB "
          f"({gib:.2f} GiB) in {len(info['big']['files'])} files, {info['big']['rows']} rows of "
          f"{PAYLOAD} random bytes; built in {build_s:.0f} s; medians of {args.rounds} rounds; "
          f"{machine()}; {args.load_start} at the start, {load()} at the end")
    print()
    print("Baselines on the same files, seconds (median): cp -r of the files dir, sync of the "
          "copy, coreutils sha256sum, openssl dgst -sha256")
    print_table(["namespace", "MB", "cp -r", "sync", "sha256sum", "openssl sha256",
                 "cp -r + sha256sum"], [
        [ns, f"{info[ns]['bytes'] / MB:.0f}", f"{m['base']['cp']:.2f}", f"{m['base']['sync']:.2f}",
         f"{m['base']['sha256sum']:.2f}", f"{m['base']['openssl']:.2f}",
         f"{m['base']['cp_sha']:.2f}"]
        for ns, m in (("small", small), ("big", big))
    ])
    print()
    print("Full BACKUP (fresh target) and full RESTORE (AS a new namespace) over HTTP, against "
          "cp -r + sha256sum; ratio = median of the per-round ratios")
    rows = []
    for ns, m in (("small", small), ("big", big)):
        mb = info[ns]["bytes"] / MB
        for op in ("backup", "restore"):
            rows.append([
                f"{op} {ns}", f"{mb:.0f}", f"{m[op]:.2f}", f"{mb / m[op]:.0f}",
                f"{m['base']['cp_sha']:.2f}", f"{m[op + '_ratio']:.2f}",
                " ".join(f"{x:.2f}" for x in m[op + "_ratios"]),
                f"{m[op + '_ratio_openssl']:.2f}",
                f"<= 1.5x: {verdict(m[op + '_ratio'] <= 1.5)}" if ns == "big" else "",
            ])
    print_table(["operation", "MB", "seconds", "MB/s", "cp+sha256sum s", "ratio",
                 "per round", "ratio vs cp+openssl", "aim"], rows)
    print()
    duck_s = med(duck)
    speedup = duck_s / big["backup"]
    print("Full backup of 'big' against DuckDB EXPORT DATABASE (FORMAT PARQUET) of the same rows "
          "(all stored columns, loaded into a DuckDB file first, not timed)")
    print_table(["operation", "seconds (median)", "per round", "aim"], [
        ["Cairn BACKUP DATABASE big", f"{big['backup']:.2f}",
         " ".join(f"{r['backup']['s']:.2f}" for r in res["big"]), ""],
        ["DuckDB EXPORT DATABASE", f"{duck_s:.2f}", " ".join(f"{x:.2f}" for x in duck), ""],
        ["cp -r of the same files (floor)", f"{big['base']['cp']:.2f}", "", ""],
        ["DuckDB / Cairn", f"{speedup:.2f}x", "", f">= 3x: {verdict(speedup >= 3)}"],
    ])
    print()
    inc = res["incremental"]
    first = res["big"][0]["backup"]
    t_ratio = inc["s"] / big["backup"]
    b_ratio = inc["row"]["bytes_written"] / first["row"]["bytes_written"]
    print(f"Second backup of 'big' into the first one's target after UPDATE of "
          f"{res['update_rows']} rows (1%) + FLUSH (those took {res['update_flush_s']:.1f} s, "
          f"not counted)")
    print_table(["backup", "seconds", "bytes_written", "files", "aim"], [
        ["first (full; seconds = median)", f"{big['backup']:.2f}", first["row"]["bytes_written"],
         first["row"]["files"], ""],
        ["second (1% changed)", f"{inc['s']:.3f}", inc["row"]["bytes_written"],
         inc["row"]["files"], ""],
        ["ratio time", f"{t_ratio:.3f}", "", "", f"< 0.10: {verdict(t_ratio < 0.10)}"],
        ["ratio bytes_written", "", f"{b_ratio:.4f}", "", f"< 0.10: {verdict(b_ratio < 0.10)}"],
    ])
    print()
    st = res["stall"]
    print("Single-row INSERT loop into big.events (no primary key): alone, and during a full "
          "backup of 'big' to a fresh target; 'warm' ran SELECT count(*) FROM big.events just "
          "before the BACKUP")
    rows = [["no backup", "", st["alone"]["n"], f"{st['alone']['p50']:.2f}",
             f"{st['alone']['p99']:.2f}", f"{st['alone']['max']:.1f}", st["alone"]["over15"], ""]]
    for v in ("cold", "warm"):
        d = st[v]
        rows.append([f"during backup, {v}", f"{d['backup_s']:.2f}", d["n"], f"{d['p50']:.2f}",
                     f"{d['p99']:.2f}", f"{d['max']:.1f}", d["over15"],
                     f"max <= 15 ms: {verdict(d['max'] <= 15)}"])
    print_table(["writer", "backup s", "inserts", "p50 ms", "p99 ms", "max ms", "> 15 ms",
                 "aim"], rows)
    print(f"(buffered INSERT statements in big.events when each backup started: at most "
          f"{st['cold']['buffered']} / {st['warm']['buffered']})")
    print()
    print(f"Server RSS (VmRSS every 10 ms): idle after start {res['idle_rss']:.0f} MB, "
          f"at the end {res['final_rss']:.0f} MB; peak = highest over the rounds")
    rows = []
    for ns, m in (("small", small), ("big", big)):
        for op in ("backup", "restore"):
            peak = m[op + "_rss_peak"]
            rows.append([f"{op} {ns}", f"{info[ns]['bytes'] / MB:.0f}",
                         f"{m[op + '_rss_before']:.0f}", f"{peak:.0f}",
                         f"{peak - m[op + '_rss_before']:+.0f}", m[op + "_samples"],
                         f"< 300 MB: {verdict(peak < 300)}"])
    upd = res["update"]
    rows.append(["UPDATE 1% of big (not a backup)", f"{info['big']['bytes'] / MB:.0f}",
                 f"{upd['rss_before']:.0f}", f"{upd['rss_peak']:.0f}",
                 f"{upd['rss_peak'] - upd['rss_before']:+.0f}", upd["rss_samples"], ""])
    rows.append(["2nd backup big (after UPDATE)", f"{info['big']['bytes'] / MB:.0f}",
                 f"{inc['rss_before']:.0f}", f"{inc['rss_peak']:.0f}",
                 f"{inc['rss_peak'] - inc['rss_before']:+.0f}", inc["rss_samples"], ""])
    print_table(["operation", "namespace MB", "RSS before MB", "peak RSS MB", "growth MB",
                 "samples", "aim"], rows)
    print()
    tk = res["tenk"]
    print(f"10k-row namespace over HTTP, median of {args.small_runs} runs (every run in "
          f"brackets); fresh target = a full backup, same target = unchanged files deduplicated")
    print_table(["namespace", "backup, fresh target ms", "backup, same target ms",
                 "restore ms", "aim"], [
        [ns + (" (flushed)" if ns == "tenk" else " (in write buffer)")]
        + [f"{tk[ns][k]:.1f} [{' '.join(f'{x:.0f}' for x in tk[ns]['all'][k])}]"
           for k in ("backup_fresh", "backup_same", "restore")]
        + [f"< 100 ms each: {verdict(max(tk[ns]['backup_fresh'], tk[ns]['restore']) < 100)}"]
        for ns in ("tenk", "tenkb")
    ])
    print()
    print("Summary")
    worst = max(st["cold"]["max"], st["warm"]["max"])
    print_table(["figure", "measured", "aim", ""], [
        [f"full backup / (cp -r + sha256sum), {gib:.2f} GiB", f"{big['backup_ratio']:.2f}x",
         "<= 1.5x", verdict(big["backup_ratio"] <= 1.5)],
        [f"full restore / (cp -r + sha256sum), {gib:.2f} GiB", f"{big['restore_ratio']:.2f}x",
         "<= 1.5x", verdict(big["restore_ratio"] <= 1.5)],
        ["DuckDB EXPORT / Cairn backup", f"{speedup:.2f}x", ">= 3x", verdict(speedup >= 3)],
        ["2nd backup time / 1st (1% changed)", f"{t_ratio:.3f}", "< 0.10", verdict(t_ratio < 0.1)],
        ["2nd backup bytes_written / 1st", f"{b_ratio:.4f}", "< 0.10", verdict(b_ratio < 0.1)],
        ["writer max latency during backup (cold / warm)",
         (f"{st['cold']['max']:.1f} / {st['warm']['max']:.1f} ms (p99 {st['cold']['p99']:.1f} / "
          f"{st['warm']['p99']:.1f}; alone max {st['alone']['max']:.1f})"),
         "<= 15 ms", verdict(worst <= 15)],
        ["peak RSS backup small / big",
         f"{small['backup_rss_peak']:.0f} / {big['backup_rss_peak']:.0f} MB", "< 300 MB, flat",
         verdict(max(small['backup_rss_peak'], big['backup_rss_peak']) < 300)],
        ["peak RSS restore small / big",
         f"{small['restore_rss_peak']:.0f} / {big['restore_rss_peak']:.0f} MB", "< 300 MB, flat",
         verdict(max(small['restore_rss_peak'], big['restore_rss_peak']) < 300)],
        ["10k rows backup / restore (flushed)",
         f"{tk['tenk']['backup_fresh']:.1f} / {tk['tenk']['restore']:.1f} ms", "< 100 ms",
         verdict(max(tk['tenk']['backup_fresh'], tk['tenk']['restore']) < 100)],
        ["10k rows backup / restore (buffered)",
         f"{tk['tenkb']['backup_fresh']:.1f} / {tk['tenkb']['restore']:.1f} ms", "< 100 ms",
         verdict(max(tk['tenkb']['backup_fresh'], tk['tenkb']['restore']) < 100)],
    ])


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
