"""Continuous archiving figures (issue 13), against a real `cairn serve` process
over HTTP (loopback, aiohttp keep-alive), every figure taken in one run:

1. overhead: `--clients` clients doing single-row INSERTs for `--seconds`,
   archiving off and on (interval 1s) in `--phases` phases (24: (off on on
   off) x 6) after a warm-up, each into a fresh table: p99 latency and
   throughput (medians of the phases of each setting, with their range, and
   the p99 of all writes of each setting, with a bootstrap interval over the
   phases) with archiving on against off                  aim <= 10% worse
   (the verdict: met only if the median p99, the pooled p99 and the
   throughput all are); the server's CPU time per write of each setting, and
   the archiver's (its cycles' threads, from /metrics): figures other work on
   the machine disturbs less than latency; the archiver's cycle step by step
   and the garbage collector's passes; and the writes in flight during a
   cycle against the rest (bench/archive_cycles.py); and a record of each
   phase beside its p99 (bench/archive_phases.py: CPU steal, other processes'
   CPU, the server's, cycles and the longest, RocksDB flushes and compactions
   from the catalog's LOG, which of the phase's slow writes were in flight
   during a cycle or a flush), the rank correlation of the phases' p99 with
   steal and with the other processes' CPU, and the p99 read by neighbouring
   (off, on) phases: the median of the pairs' ratios (not the verdict)
2. RPO: `--kills` times, a fresh server archiving (interval 1s) under
   `--clients` writing clients is SIGKILLed at a random moment; RPO = kill time
   minus the commit time of the newest change present in the target
                                                          aim p99 <= interval + 1 s
3. restore to a time: a base of `--base-mb` MB of Parquet (built with the
   engine, not timed) plus `--changes` archived single-row INSERTs, restored
   `AS` another namespace as of the archive's end, against a plain RESTORE of a
   backup of the same final state, `--rounds` pairs on the one built state
   (which goes first alternates; both sources read into the page cache and
   os.sync() before each; every pair printed) aim: median ratio <= 1.5x
4. exactness: `--clients` clients write unique keys for `--seconds` while
   archiving (interval 1s), logging when each INSERT was sent and answered;
   then `--times` restores to random instants: every write answered before the
   instant is there and none sent after it                aim: every restore exact

Each figure is printed with the load average (1, 5, 15 min) at its end: the
machine may be shared.

    python bench/bench_archive.py [--clients 16] [--seconds 10] [--phases 24] [--kills 5]
                                  [--base-mb 256] [--changes 20000] [--rounds 5] [--times 50]
                                  [--only overhead|rpo|restore|exact|blocks|gil]
                                  [--root CHECKOUT]

`--only blocks` times, in this process, building one segment's blocks from 400
one-row statements against decoding each statement (what the archiver did
before). `--only gil --changes 300` measures, in this process, how long a
cycle's steps hold the GIL at a stretch (bench/archive_gil.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import archive_cycles as cycles
from bench import archive_phases
from bench.bench_backup import build
from bench.common import Server, first_row, pct, session, sql
from storage.archive import store
from storage.archive.blocks import last_change_us
from storage.backup import Repository, resolve_target


def config(work: Path) -> Path:
    cfg = work / "cairn.toml"
    cfg.write_text(f'[backup]\nroots = ["{work / "backups"}"]\n')
    return cfg


async def writers(url: str, clients: int, seconds: float, start: int,
                  stop: asyncio.Event | None = None, table: str = "t",
                  stamps: list[tuple[float, float]] | None = None) -> tuple[list[float], int]:
    """Single-row INSERTs from `clients` tasks; (latencies ms, writes done).
    `stamps` gets (unix time sent, latency ms) of each."""
    lat: list[float] = []
    deadline = time.monotonic() + seconds

    async def one(c: int, http: aiohttp.ClientSession) -> None:
        i = 0
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            key = start + c * 10_000_000 + i
            i += 1
            sent, t0 = time.time(), time.perf_counter()
            try:
                await sql(http, url, f"INSERT INTO app.{table} VALUES ({key}, {i}, NULL)")
            except (aiohttp.ClientError, OSError):
                return
            lat.append((time.perf_counter() - t0) * 1000)
            if stamps is not None:
                stamps.append((sent, lat[-1]))

    async with session(clients) as http:
        await asyncio.gather(*(one(c, http) for c in range(clients)))
    return lat, len(lat)


# Off and on alternate as A B B A (repeated), so a drift of the machine's load
# cancels out, and each phase writes a fresh table (dropped after it): a table that
# grows phase after phase makes every later phase slower (its primary-key checks read
# more files), which would be charged to whichever setting came later. A warm-up
# phase (not counted, archiving off) goes first: the server's first seconds are
# slower (imports, first plans), which would be charged to the first phase, "off".
def order(phases: int) -> list[str]:
    if phases < 4 or phases % 4:
        raise SystemExit("--phases must be a multiple of 4 (off on on off, repeated)")
    return ["off", "on", "on", "off"] * (phases // 4)


async def overhead(work: Path, clients: int, seconds: float, phases: int = 24,
                   root: Path | None = None) -> dict[str, Any]:
    srv = Server(work / "ov-data", config=config(work), **({"root": root} if root else {}))
    per: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    lats: dict[str, list[list[float]]] = {"off": [], "on": []}  # each phase's latencies
    cpu: dict[str, list[float]] = {"off": [], "on": []}  # server CPU ms per write
    ship: list[float] = []  # the archiver's CPU (its cycles' threads) µs per write
    # server CPU µs per write by thread name (RocksDB names its threads; Python's
    # threads all carry the process's name): where archiving's cost lands
    threads: dict[str, dict[str, list[float]]] = {"off": {}, "on": {}}
    # per phase: the cycle's steps and the garbage collector's passes (/metrics)
    step_costs: dict[str, list[dict[str, tuple[float, int]]]] = {"off": [], "on": []}
    stamped: list[cycles.Write] = []  # on-phase writes: (sent, latency ms)
    spans: list[tuple[float, float]] = []  # on-phase cycles: (start, end)
    records: list[archive_phases.Phase] = []  # what happened in each phase, beside its p99
    try:
        async with session(2) as http:
            await sql(http, srv.url, "CREATE NAMESPACE app; CREATE TABLE app.warm "
                                     "(id BIGINT PRIMARY KEY, v BIGINT, payload BYTES)")
        await writers(srv.url, clients, min(seconds, 3.0), 0, table="warm")
        async with session(2) as http:
            await sql(http, srv.url, "DROP TABLE app.warm")
        for i, phase in enumerate(order(phases)):
            async with session(2) as http:
                await sql(http, srv.url, f"CREATE TABLE app.t{i} "
                                         "(id BIGINT PRIMARY KEY, v BIGINT, payload BYTES)")
                if phase == "on":
                    await sql(http, srv.url, f"START ARCHIVING DATABASE app TO 'ov{i}' "
                                             "WITH (interval = '1s')")
            cpu0, ship0 = cpu_s(srv.pid), await ship_cpu_s(srv.url)
            by0, steps0 = thread_cpu_s(srv.pid), await cycles.steps(srv.url)
            stamps: list[cycles.Write] = []
            probe = archive_phases.Probe(srv.pid).start(time.time())
            lat, n = await writers(srv.url, clients, seconds, 0, table=f"t{i}", stamps=stamps)
            seen = probe.end(time.time())
            cpu[phase].append((cpu_s(srv.pid) - cpu0) * 1000 / max(n, 1))
            by1 = thread_cpu_s(srv.pid)
            step_costs[phase].append(cycles.step_delta(steps0, await cycles.steps(srv.url)))
            phase_steps = step_costs[phase][-1]
            for name in set(by0) | set(by1):
                used = (by1.get(name, 0.0) - by0.get(name, 0.0)) * 1e6 / max(n, 1)
                threads[phase].setdefault(name, []).append(used)
            mine: list[tuple[float, float]] = []
            if phase == "on":
                ship.append((await ship_cpu_s(srv.url) - ship0) * 1e6 / max(n, 1))
                stamped += stamps
                mine = cycles.windows(work / "backups" / f"ov{i}")
                spans += mine
            per[phase].append((pct(lat, 99), n / seconds))
            records.append(archive_phases.Phase(
                i, phase, probe.wall, time.time(), pct(lat, 99), n / seconds, seen, mine,
                1000 * phase_steps.get("helper_cpu", (0.0, 0))[0],
                phase_steps.get("gc2", (0.0, 0))[1], stamps))
            lats[phase].append(lat)
            print(f"  phase {i + 1} archiving {phase}: p99 {pct(lat, 99):.1f} ms, "
                  f"{n / seconds:.0f} writes/s, server CPU {cpu[phase][-1]:.2f} ms/write; "
                  f"steal {seen['steal_pct']:.1f}%, other processes {seen['others_pct']:.0f}% "
                  f"of a CPU; {load()}", flush=True)
            async with session(2) as http:
                if phase == "on":
                    await sql(http, srv.url, "STOP ARCHIVING DATABASE app")
                await sql(http, srv.url, f"DROP TABLE app.t{i}")
    finally:
        srv.stop()
    out: dict[str, Any] = {}
    for k, vals in per.items():
        p99s, tputs = sorted(v[0] for v in vals), sorted(v[1] for v in vals)
        out[f"p99_{k}_ms"] = statistics.median(p99s)
        out[f"p99_{k}_range"] = (p99s[0], p99s[-1])
        out[f"p99_{k}_pooled"] = pct([x for phase_lat in lats[k] for x in phase_lat], 99)
        out[f"tput_{k}"] = statistics.median(tputs)
        out[f"tput_{k}_range"] = (tputs[0], tputs[-1])
        out[f"cpu_{k}"] = statistics.median(cpu[k])
    out["p99_worse_pct"] = 100 * (out["p99_on_ms"] / out["p99_off_ms"] - 1)
    out["p99_pooled_worse_pct"] = 100 * (out["p99_on_pooled"] / out["p99_off_pooled"] - 1)
    out["p99_pooled_ci"] = cycles.bootstrap(lats)
    out["tput_worse_pct"] = 100 * (1 - out["tput_on"] / out["tput_off"])
    out["cpu_worse_pct"] = 100 * (out["cpu_on"] / out["cpu_off"] - 1)
    out["phases"] = phases
    out["ship_us"] = statistics.median(ship)
    out["threads"] = {
        name: (statistics.median(threads["off"].get(name) or [0.0]),
               statistics.median(threads["on"].get(name) or [0.0]))
        for name in set(threads["off"]) | set(threads["on"])}
    out["steps"] = step_costs
    out["cycles"] = cycles.against_cycles(stamped, spans, out["p99_on_pooled"])
    out["tail_ms"] = out["p99_off_pooled"]
    events = archive_phases.rocksdb_events(srv.data_dir / "catalog" / "LOG")
    out["rocksdb_events"] = len(events)
    out["per_phase"] = archive_phases.summary(records, events, out["tail_ms"])
    return out


async def ship_cpu_s(url: str) -> float:
    """CPU seconds the server's archivers have spent in their cycles so far
    (/metrics, phase archive_ship_cpu)."""
    async with session(1) as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith('cairn_write_phase_seconds_sum{phase="archive_ship_cpu"}'):
            return float(line.split()[-1])
    return 0.0


def show_overhead(r: dict[str, Any]) -> str:
    def rng(key: str) -> str:
        lo, hi = r[key]
        return f"{lo:.0f}-{hi:.0f}"
    return (f"overhead  {r['phases']} phases, medians (min-max): p99 off {r['p99_off_ms']:.1f} ms "
            f"({rng('p99_off_range')}), on {r['p99_on_ms']:.1f} ms ({rng('p99_on_range')}): "
            f"{r['p99_worse_pct']:+.1f}%; p99 of all writes of each setting off "
            f"{r['p99_off_pooled']:.1f} ms, on {r['p99_on_pooled']:.1f} ms: "
            f"{r['p99_pooled_worse_pct']:+.1f}%; throughput off {r['tput_off']:.0f}/s "
            f"({rng('tput_off_range')}), on {r['tput_on']:.0f}/s ({rng('tput_on_range')}): "
            f"{r['tput_worse_pct']:+.1f}% worse; server CPU per write off {r['cpu_off']:.2f} ms, "
            f"on {r['cpu_on']:.2f} ms ({r['cpu_worse_pct']:+.1f}%), of which the archiver's "
            f"cycles {r['ship_us']:.0f} us; {load()}\n"
            + "  server CPU per write by thread name, medians off / on: "
            + "; ".join(f"{name} {off:.0f} / {on:.0f} us"
                        for name, (off, on) in sorted(r.get("threads", {}).items(),
                                                      key=lambda kv: -max(kv[1]))[:6])
            + "\n" + cycles.show_steps(r["steps"]["on"]) + "\n" + cycles.show_gc(r["steps"])
            + "\n" + cycles.show_cycles(r["cycles"])
            + "\n" + archive_phases.show(r["per_phase"], r["tail_ms"], r["rocksdb_events"])
            + "\n" + archive_phases.paired(r["per_phase"])
            + "\n" + cycles.verdict(r))


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds used so far by the process's threads, summed by thread name
    (digits dropped: 'rocksdb:low0' and 'rocksdb:low1' are one name). Threads
    that have ended are not counted (cpu_s has them)."""
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = "".join(ch for ch in text[text.index("(") + 1:text.rindex(")")] if not ch.isdigit())
        fields = text.rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        out[name] = out.get(name, 0.0) + used
    return out


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def newest_change_us(target: Path) -> int:
    repo = Repository(resolve_target(str(target), [str(target.parent)], {}))
    newest = 0
    for aid in store.archive_ids(repo, "app"):
        segs = [s for s in store.list_segments(repo, "app", aid).segments if not s.empty]
        if segs:
            _, changes, _ = store.read_segment(repo, "app", aid, segs[-1])
            newest = max(newest, last_change_us(changes) or 0)
    return newest


async def rpo(work: Path, clients: int, kills: int) -> dict[str, Any]:
    rng = random.Random(11)
    samples = []
    for k in range(kills):
        run = work / f"rpo{k}"
        run.mkdir()
        srv = Server(run / "data", config=config(run))
        async with session(2) as http:
            await sql(http, srv.url, "CREATE NAMESPACE app; CREATE TABLE app.t "
                                     "(id BIGINT PRIMARY KEY, v BIGINT, payload BYTES)")
            await sql(http, srv.url,
                      "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '1s')")
        stop = asyncio.Event()
        task = asyncio.create_task(writers(srv.url, clients, 60, 0, stop))
        await asyncio.sleep(rng.uniform(3.0, 6.0))
        killed = time.time()
        os.kill(srv.pid, signal.SIGKILL)
        stop.set()
        await task
        srv.proc.wait()
        srv._log.close()
        samples.append(killed - newest_change_us(run / "backups" / "arch") / 1e6)
    return {"rpo_p50_s": pct(samples, 50), "rpo_p99_s": pct(samples, 99),
            "rpo_max_s": max(samples), "kills": kills}


def warm(*dirs: Path) -> int:
    """Read every file under `dirs` once (into the page cache): both restores
    of a pair then read their sources from memory, whichever was written last
    or read by the one before. The bytes read."""
    n = 0
    for d in dirs:
        for f in sorted(p for p in d.rglob("*") if p.is_file()):
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    n += len(chunk)
    return n


async def restore_to_time(work: Path, clients: int, base_mb: int, changes: int,
                          py_spy: str | None = None, rounds: int = 5) -> dict[str, Any]:
    """Builds the state once (a base, `changes` archived INSERTs, STOP
    ARCHIVING, a BACKUP of the final state to 'plain'), then `rounds` pairs
    on it: the restore to a time first in odd rounds, the plain RESTORE first
    in even ones (so neither side is always the server's first restore), both
    targets read into the page cache and `os.sync()` before each restore, both
    namespaces checked equal and dropped after each pair."""
    data = work / "rt-data"
    build(data, {"app": base_mb}, flush_mb=64)
    srv = Server(data, config=config(work))
    pairs: list[tuple[float, float]] = []
    loads: list[str] = []
    try:
        async with session(2) as http:
            await sql(http, srv.url, "START ARCHIVING DATABASE app TO 'rt' WITH (interval = '1s')")
        per = changes // clients

        async def one(c: int, http: aiohttp.ClientSession) -> None:
            for i in range(per):
                key = 10**12 + c * 10**7 + i
                await sql(http, srv.url, f"INSERT INTO app.t VALUES ({key}, {i}, NULL)")

        t0 = time.perf_counter()
        async with session(clients) as http:
            await asyncio.gather(*(one(c, http) for c in range(clients)))
        write_s = time.perf_counter() - t0
        async with session(2) as http:
            row = first_row(await sql(http, srv.url, "STOP ARCHIVING DATABASE app"))
            end = first_row(await sql(http, srv.url,
                                      "SHOW RESTORE POINTS FOR DATABASE app IN 'rt'"))["end_time"]
            await sql(http, srv.url, "BACKUP DATABASE app TO 'plain'")
            statements = {
                "pitr": f"RESTORE DATABASE app FROM 'rt' AS pitr WITH (as_of = '{end}')",
                "plain": "RESTORE DATABASE app FROM 'plain' AS plain",
            }
            for r in range(rounds):
                took: dict[str, float] = {}
                for side in ("pitr", "plain") if r % 2 == 0 else ("plain", "pitr"):
                    warm(work / "backups" / "rt", work / "backups" / "plain")
                    os.sync()
                    spy = None
                    if py_spy and side == "pitr" and r == rounds - 1:  # the last one, warm
                        spy = subprocess.Popen(
                            ["py-spy", "record", "-p", str(srv.pid), "-o", py_spy, "-f", "raw",
                             "-r", "50", "--threads"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        await asyncio.sleep(1.0)
                    t0 = time.perf_counter()
                    await sql(http, srv.url, statements[side])
                    took[side] = time.perf_counter() - t0
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait()
                count = "SELECT count(*) AS n, sum(v) AS s FROM {}.t"
                a = first_row(await sql(http, srv.url, count.format("pitr")))
                b = first_row(await sql(http, srv.url, count.format("plain")))
                assert a == b, (a, b)
                await sql(http, srv.url, "DROP NAMESPACE pitr CASCADE")
                await sql(http, srv.url, "DROP NAMESPACE plain CASCADE")
                pairs.append((took["pitr"], took["plain"]))
                loads.append(load())
    finally:
        srv.stop()
    ratios = [p / q for p, q in pairs]
    return {"base_mb": base_mb, "changes": per * clients, "segments": row["segments"],
            "archived_mb": row["bytes"] / 2**20, "write_s": write_s, "pairs": pairs,
            "loads": loads, "pitr_restore_s": statistics.median(p for p, _ in pairs),
            "plain_restore_s": statistics.median(q for _, q in pairs),
            "ratio": statistics.median(ratios)}


async def exactness(work: Path, clients: int, seconds: float, times: int) -> dict[str, Any]:
    run = work / "exact"
    run.mkdir()
    srv = Server(run / "data", config=config(run))
    log: list[tuple[int, float, float]] = []
    try:
        async with session(clients + 2) as http:
            await sql(http, srv.url, "CREATE NAMESPACE app; CREATE TABLE app.t "
                                     "(id BIGINT PRIMARY KEY, v BIGINT, payload BYTES)")
            await sql(http, srv.url,
                      "START ARCHIVING DATABASE app TO 'arch' WITH (interval = '1s')")
            deadline = time.monotonic() + seconds

            async def one(c: int) -> None:
                i = 0
                while time.monotonic() < deadline:
                    key = c * 10_000_000 + i
                    i += 1
                    sent = time.time()
                    await sql(http, srv.url, f"INSERT INTO app.t VALUES ({key}, {c}, NULL)")
                    log.append((key, sent, time.time()))
                    if i % 200 == 0:
                        await sql(http, srv.url, "FLUSH TABLE app.t")

            await asyncio.gather(*(one(c) for c in range(clients)))
            await sql(http, srv.url, "STOP ARCHIVING DATABASE app")
            lo, hi = min(s for _, s, _ in log), max(a for _, _, a in log)
            rng = random.Random(5)
            bad = 0
            for _ in range(times):
                at = rng.uniform(lo, hi)
                when = store.iso_exact(int(at * 1_000_000))
                await sql(http, srv.url,
                          f"RESTORE DATABASE app FROM 'arch' AS x WITH (as_of = '{when}')")
                body = await sql(http, srv.url, "SELECT id FROM x.t")
                got = {r["id"] for r in body["results"][0]["rows"]}
                at_s = int(at * 1_000_000) / 1_000_000
                missing = {k for k, _, a in log if a < at_s} - got
                extra = {k for k, s, _ in log if s > at_s} & got
                if missing or extra:
                    bad += 1
                    print(f"  NOT EXACT as of {when}: {len(missing)} answered writes missing, "
                          f"{len(extra)} writes sent after it present")
                await sql(http, srv.url, "DROP NAMESPACE x CASCADE")
    finally:
        srv.stop()
    return {"writes": len(log), "times": times, "inexact": bad}


def blocks_cost(statements: int) -> dict[str, float]:
    """In-process: building one segment's blocks from `statements` one-row
    INSERTs (encode_body: spliced) against decoding every statement's stream
    and concatenating them (what the archiver did before); best of 30, ms."""
    import pyarrow as pa

    from storage.archive.blocks import encode_body
    from storage.archive.changes import ROWS, Change
    from storage.buffer import decode, encode

    schema = pa.schema([pa.field("_seq", pa.int64(), nullable=False), pa.field("_ow", pa.bool_()),
                        pa.field("id", pa.int64()), pa.field("v", pa.int64()),
                        pa.field("payload", pa.binary())])
    changes = [Change(10 + i, 1_000_000 + i, ROWS, "t", encode(
        pa.table([[i], [False], [i], [i], pa.array([None], pa.binary())], schema=schema),
        1, 1764619000 + i / 400, None)) for i in range(statements)]

    def decoded() -> bytes:
        rows = pa.concat_tables([decode(b"", c.data).rows for c in changes]).combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        return bytes(sink.getvalue().to_pybytes())

    def best(fn: Any) -> float:
        times = []
        for _ in range(30):
            t0 = time.thread_time()
            fn()
            times.append(time.thread_time() - t0)
        return min(times) * 1000

    return {"spliced_ms": best(lambda: encode_body(changes)), "decoded_ms": best(decoded)}


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--base-mb", type=int, default=256)
    ap.add_argument("--changes", type=int, default=20_000)
    ap.add_argument("--times", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5,
                    help="restore: pairs of restores on the one built state (alternating "
                         "which goes first); the median ratio is the figure")
    ap.add_argument("--py-spy", default=None, metavar="FILE",
                    help="record the server with py-spy (raw stacks) during the restore to a time")
    ap.add_argument("--phases", type=int, default=24,
                    help="overhead: phases of --seconds each, (off on on off) repeated")
    ap.add_argument("--root", type=Path, default=None,
                    help="overhead: run the server from this checkout (A/B against another)")
    ap.add_argument("--only", choices=["overhead", "rpo", "restore", "exact", "blocks", "gil"],
                    default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cairn-bench-archive-"))
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, work dir {work}")
    try:
        if args.only == "blocks":
            r = blocks_cost(400)
            print(f"blocks    400 one-row statements: spliced {r['spliced_ms']:.2f} ms, "
                  f"decoded one by one {r['decoded_ms']:.2f} ms (thread CPU, best of 30); "
                  f"{load()}")
        if args.only == "gil":
            from bench import archive_gil
            print(f"gil       cycles of {args.changes} one-row statements, in one process")
            for switch, paced in ((0.005, False), (0.005, True), (0.001, False)):
                print(archive_gil.show(archive_gil.cycles(args.changes, 40, switch, paced),
                                       switch, paced))
            h = archive_gil.head_scan()
            print(f"  the oldest change left after 60,000 trimmed ones: from the log's head "
                  f"{h['head']:.1f} ms (the probe waited up to {h['head_probe']:.1f} ms), past "
                  f"the trimmed range {h['past_trim']:.3f} ms (waited {h['past_trim_probe']:.1f} "
                  f"ms)")
            print(f"  {load()}")
        if args.only in (None, "overhead"):
            r = await overhead(work, args.clients, args.seconds, args.phases, args.root)
            print(show_overhead(r))
        if args.only in (None, "rpo"):
            r = await rpo(work, args.clients, args.kills)
            print(f"RPO       {r['kills']} kills: p50 {r['rpo_p50_s']:.2f} s, "
                  f"p99 {r['rpo_p99_s']:.2f} s, max {r['rpo_max_s']:.2f} s (interval 1 s); "
                  f"{load()}")
        if args.only in (None, "restore"):
            r = await restore_to_time(work, args.clients, args.base_mb, args.changes, args.py_spy,
                                      args.rounds)
            head = (f"restore   base {r['base_mb']} MB + {r['changes']} changes in "
                    f"{r['segments']} segments ({r['archived_mb']:.1f} MB)")
            for i, ((p, q), ld) in enumerate(zip(r["pairs"], r["loads"], strict=True)):
                first = "to a time first" if i % 2 == 0 else "plain first"
                print(f"{head}, pair {i + 1} ({first}): to a time {p:.2f} s, plain restore of "
                      f"the same state {q:.2f} s, ratio {p / q:.2f}x; {ld}")
            print(f"{head}, median of {len(r['pairs'])} pairs: to a time "
                  f"{r['pitr_restore_s']:.2f} s, plain restore of the same state "
                  f"{r['plain_restore_s']:.2f} s, ratio {r['ratio']:.2f}x (aim <= 1.5x); {load()}")
        if args.only in (None, "exact"):
            r = await exactness(work, args.clients, args.seconds, args.times)
            print(f"exactness {r['writes']} logged writes, {r['times']} restores to random "
                  f"times: {r['times'] - r['inexact']} exact, {r['inexact']} not; {load()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
