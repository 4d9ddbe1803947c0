"""INSERT throughput with interleaved key spaces (issue 15, storage/keyfilter.py).

`--clients` clients each send single-row INSERTs with keys
`10**12 + client * 10**7 + i` (the keys of bench_archive.py's restore phase)
into one table that flushes every `--flush-rows` rows. Every file the flusher
writes holds keys of all clients, so its key range covers every key still to
come: without per-file key filters each later INSERT's duplicate-key check
reads those files with DuckDB, and the writes slow down as files accumulate.

Printed per run: writes/s over each quarter of the writes and overall, the
table's files at the end, the key check's file counts from /metrics (if the
server has them), and the load average beside each figure. With `--root`, the
same run also goes to a server started from that checkout (e.g. main before
this change), alternating A B B A over `--rounds`, in one sitting.

`--cpu`: in-process, no HTTP: CPU time per single-row INSERT (`Engine.execute`
of a parsed statement) into a table with no files and into one with `--files`
flushed files of interleaved keys (a new key inside every file's range), and
the DuckDB queries those INSERTs ran; with `--root`, that checkout's engine.

`--memory`: the key filters of a `--table-mb` MB table built like
bench_backup.py's (BIGINT key, 1 KiB payload rows, files of `--flush-mb`):
their bytes and the time to build them from the files (what a restart or a
RESTORE costs the first INSERT that needs them).

    python bench/bench_keyfilter.py [--clients 16] [--writes 32000] [--flush-rows 2000]
                                    [--root /path/to/other/checkout] [--rounds 1]
    python bench/bench_keyfilter.py --cpu [--files 15] [--root DIR]
    python bench/bench_keyfilter.py --memory [--table-mb 1024] [--flush-mb 64]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Server, load, revision, session, sql


async def writes(url: str, clients: int, total: int) -> list[float]:
    """Send `total` single-row INSERTs from `clients` tasks; the time each
    quarter of them was done (seconds from the start)."""
    per = total // clients
    done = 0
    marks: list[float] = []
    quarter = per * clients // 4
    t0 = time.perf_counter()

    async def one(c: int, http: aiohttp.ClientSession) -> None:
        nonlocal done
        for i in range(per):
            key = 10**12 + c * 10**7 + i
            await sql(http, url, f"INSERT INTO app.t VALUES ({key}, {i}, NULL)")
            done += 1
            if done % quarter == 0:
                marks.append(time.perf_counter() - t0)

    async with session(clients) as http:
        await asyncio.gather(*(one(c, http) for c in range(clients)))
    return marks


async def metrics(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as resp:
        text = await resp.text()
    out = {}
    for m in re.finditer(r'^cairn_key_check_files_total\{outcome="(\w+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    m = re.search(r"^cairn_key_filter_bytes (\S+)$", text, re.M)
    if m:
        out["filter_bytes"] = float(m.group(1))
    return out


async def one_run(work: Path, root: Path, clients: int, total: int,
                  flush_rows: int) -> dict[str, Any]:
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    srv = Server(data, root=root)
    try:
        async with session(2) as http:
            await sql(http, srv.url, "CREATE NAMESPACE app")
            await sql(http, srv.url, "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v BIGINT, "
                      f"payload BYTES) WITH (flush_rows = {flush_rows})")
        marks = await writes(srv.url, clients, total)
        async with session(2) as http:
            files = (await sql(http, srv.url, "SELECT files FROM system.tables "
                               "WHERE namespace = 'app'"))["results"][0]["rows"][0]["files"]
            counts = await metrics(http, srv.url)
    finally:
        srv.stop()
    n = total // clients * clients
    rates = [n / 4 / (b - a) for a, b in zip([0.0, *marks], marks, strict=False)]
    return {"rates": rates, "overall": n / marks[-1], "seconds": marks[-1], "files": files,
            "counts": counts, "load": load()}


def show(label: str, r: dict[str, Any]) -> None:
    quarters = " / ".join(f"{x:.0f}" for x in r["rates"])
    extra = ""
    if r["counts"]:
        c = r["counts"]
        extra = (f"; key check files: checked {c.get('checked', 0):.0f}, range-skipped "
                 f"{c.get('range_skipped', 0):.0f}, filter-skipped {c.get('filter_skipped', 0):.0f}"
                 f", filters {c.get('filter_bytes', 0) / 1024:.0f} KiB")
    print(f"{label:>8}: {r['overall']:.0f} writes/s overall ({r['seconds']:.1f} s), per quarter "
          f"{quarters}; {r['files']} files at the end{extra}; {r['load']}", flush=True)


def memory(work: Path, table_mb: int, flush_mb: int) -> None:
    from bench.bench_backup import build
    from catalog import Catalog, DataFile
    from storage.keyfilter import FileFilters

    data = work / "mem-data"
    info = build(data, {"app": table_mb}, flush_mb=flush_mb)["app"]
    catalog = Catalog(data / "catalog")
    try:
        files = list(catalog.scan(DataFile))
    finally:
        catalog.close()
    columns = [{"name": "id", "type": "BIGINT"}, {"name": "v", "type": "BIGINT"},
               {"name": "payload", "type": "BYTES"}]
    filters = FileFilters()
    t0 = time.perf_counter()
    for f in files:
        filters.learn(f.path, data / f.path, columns, ["id"])
    secs = time.perf_counter() - t0
    rows = sum(f.rows for f in files)
    print(f"memory: {table_mb} MB table, {len(files)} files, {rows} rows "
          f"({info['bytes'] / 2**20:.0f} MiB of Parquet): filters {filters.bytes / 2**20:.2f} MiB "
          f"({filters.bytes / max(1, rows):.2f} bytes a key), built from the files in "
          f"{secs:.2f} s; {load()}", flush=True)


def cpu(work: Path, root: Path, files: int, inserts: int = 3000) -> None:
    sys.path.insert(0, str(root))  # that checkout's storage (and its test helpers)
    import sqlglot

    from catalog import Catalog, Namespace
    from storage.engine import Engine
    from tests.storage.conftest import Cfg, col

    catalog = Catalog(work / "cpu" / "catalog")
    engine = Engine(catalog, work / "cpu", Cfg())  # type: ignore[arg-type]
    try:
        catalog.put(Namespace("app"))
        for t in ("empty", "files"):
            engine.create_table("app", t, "shared",
                                [col("id", "BIGINT", primary_key=True), col("v")])
        for f in range(files):  # 16 clients x 63 keys a file, every client in every file
            rows = ", ".join(f"({10**12 + c * 10**7 + f * 63 + j}, 1)"
                             for c in range(16) for j in range(63))
            engine.execute(sqlglot.parse_one(f"INSERT INTO app.files VALUES {rows}",
                                             read="duckdb"), None, "app")
            engine.flush_table("app", "files")

        def run(table: str, base: int) -> tuple[float, int]:
            stmts = [sqlglot.parse_one(f"INSERT INTO app.{table} VALUES "
                                       f"({10**12 + (i % 15) * 10**7 + base + i // 15}, 1)",
                                       read="duckdb") for i in range(inserts)]
            runs = sum(engine.duckdb_runs.values())
            t0 = time.process_time()
            for s in stmts:
                engine.execute(s, None, "app")
            return ((time.process_time() - t0) / inserts * 1e6,
                    sum(engine.duckdb_runs.values()) - runs)

        for i in range(2):
            for table in ("empty", "files"):
                us, runs = run(table, 5000 + i * 1000)
                n = files if table == "files" else 0
                print(f"cpu: {n:>3} files: {us:.0f} µs of CPU per INSERT, {runs} DuckDB queries "
                      f"for {inserts} INSERTs; {load()}", flush=True)
    finally:
        engine.close()
        catalog.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--writes", type=int, default=32_000)
    ap.add_argument("--flush-rows", type=int, default=2_000)
    ap.add_argument("--root", type=Path, help="another checkout to run the same load against")
    ap.add_argument("--rounds", type=int, default=1, help="A B B A pairs with --root")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--files", type=int, default=15)
    ap.add_argument("--table-mb", type=int, default=1024)
    ap.add_argument("--flush-mb", type=int, default=64)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-keyf-"))
    try:
        if args.memory:
            memory(work, args.table_mb, args.flush_mb)
            return
        if args.cpu:
            print(f"cpu: {(args.root or ROOT).resolve()} at {revision(args.root or ROOT)}")
            cpu(work, (args.root or ROOT).resolve(), args.files)
            return
        roots = [("this", ROOT)]
        if args.root is not None:
            roots.append(("other", args.root.resolve()))
        for label, root in roots:
            print(f"{label}: {root} at {revision(root)}")
        print(f"{args.clients} clients, {args.writes} single-row INSERTs, interleaved key spaces, "
              f"flush every {args.flush_rows} rows", flush=True)
        order = [roots[0]] if len(roots) == 1 else [roots[1], roots[0], roots[0], roots[1]]
        for _ in range(args.rounds):
            for label, root in order:
                r = asyncio.run(one_run(work, root, args.clients, args.writes, args.flush_rows))
                show(label, r)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
