"""Writer stalls and server memory (issue 15), against a real `cairn serve`:

1. the longest of `--inserts` single-row INSERTs (one client, one after the
   other) with nothing else running, and the same loop while full BACKUPs of
   the namespace run back to back (each into a fresh target; the first starts
   with a cold buffer cache)                                    aim max <= 15 ms
   Before the first loop the kernel is made to write out what earlier work
   left dirty (`sync`). Each INSERT's time is split (the server's main thread
   and the client: on a CPU, waiting for one; the CPUs' idle time and steal,
   the time the hypervisor took the virtual CPUs away; major page faults of
   the server and the client; the machine's compaction and reclaim stalls),
   and each INSERT over the aim is listed with its steal, faults and stalls.
2. where the time went, from the server's own /metrics: the commit phases,
   the table-lock waits, the longest table-lock holds (by the code and thread
   that held the lock, with the CPU that thread used meanwhile) and GC pauses
3. server RSS (VmRSS every 10 ms) around an UPDATE and a DELETE of 1% of a
   `--mb` table and around a few SELECTs: peak, and RSS 2 s after
                                           aim peak < 300 MB, back where it was
4. with `--backup-mb N` (instead of 1-3): server RSS around a full BACKUP of a
   namespace of N MB and a RESTORE of it under another name (dropped after),
   on a data dir `--backup-data` built once and used in place
                                           aim peak < 300 MB, flat

The table is made like bench_backup.py's: `t (id BIGINT PRIMARY KEY, v BIGINT,
payload BYTES)`, 1000 random bytes a row, loaded in-process and flushed every
100 MB (not timed). `--server-root` runs the server from another checkout
(e.g. /work/main) so two versions can be compared on the same machine in one
sitting; each figure is printed with the 1-minute load average when taken.

    python bench/bench_writer.py [--mb 1024] [--inserts 2000] [--server-root DIR]
    python bench/bench_writer.py --backup-mb 10240 --backup-data /tmp/b10 [--server-root DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backup import build
from common import ROOT, RssSampler, Server, pct, session, sql
from stall_probe import (
    REASONS,
    DirtySampler,
    OffCpu,
    by_nice,
    meminfo_mb,
    nice_delta,
    own_clock,
    thread_clock,
)

STALL_AIM_MS = 15.0
RSS_AIM_MB = 300.0


def load_avg() -> float:
    return os.getloadavg()[0]


def run_queue_ms(pid: int) -> float:
    """Milliseconds the process's threads have spent runnable but not running
    (waiting for a CPU): the sum of /proc/<pid>/task/*/schedstat's 2nd field."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e6


def rss_mb(srv: Server) -> float:
    return RssSampler.read_kb(srv.pid) / 1024


# --- 1. stalls -----------------------------------------------------------------------


async def insert_loop(http: Any, url: str, first: int, n: int,
                      busy: asyncio.Event | None = None, pid: int = 0,
                      parts: list[tuple[float, ...]] | None = None) -> list[float]:
    """`n` single-row INSERTs one after the other: ms each (only those that ran
    while `busy` was set, if given). With `parts`, each INSERT's (wall, the
    server main thread's CPU and run-queue wait, the client's CPU and wait, the
    CPUs' idle time, the CPUs' steal) in ms, and the major page faults (a page
    read from disk) of the server's threads and of this process, and the
    machine's compaction and reclaim stalls (`kernel_stalls`)."""
    out = []
    me = threading.get_native_id()
    for i in range(first, first + n):
        if parts is not None:
            s0, c0, m0 = thread_clock(pid, pid), own_clock(me), machine_clock()
            f0, k0, n0 = major_faults(pid), kernel_stalls(), minor_faults(pid)
        t0 = time.perf_counter()
        await sql(http, url, f"INSERT INTO big.events (n, note) VALUES ({i}, 'event {i}')")
        ms = (time.perf_counter() - t0) * 1000
        if busy is None or busy.is_set():
            out.append(ms)
            if parts is not None:
                s1, c1, m1 = thread_clock(pid, pid), own_clock(me), machine_clock()
                f1, k1, n1 = major_faults(pid), kernel_stalls(), minor_faults(pid)
                parts.append((ms, s1[0] - s0[0], s1[1] - s0[1], c1[0] - c0[0], c1[1] - c0[1],
                              m1[0] - m0[0], m1[1] - m0[1], f1[0] - f0[0], f1[1] - f0[1],
                              k1 - k0, n1 - n0, t0))
    return out


_IDLE = sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpuidle/state*/time"))


def major_faults(pid: int) -> tuple[int, int]:
    """Major page faults so far: the server's (every thread) and this process's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            server = int(f.read().rpartition(")")[2].split()[9])
    except (OSError, IndexError, ValueError):
        server = 0
    return server, resource.getrusage(resource.RUSAGE_SELF).ru_majflt


def minor_faults(pid: int) -> int:
    """Minor page faults of the server's main thread so far (a page mapped
    again, e.g. after malloc handed it back: kernel CPU on that thread)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[7])
    except (OSError, IndexError, ValueError):
        return 0


# (start, end) of each BACKUP of the loop, perf_counter seconds: where the
# INSERTs over the aim fell in them.
SPANS: list[tuple[float, float]] = []


def where(t: float) -> str:
    """`t` (an INSERT's start) against the BACKUP it fell in."""
    for a, b in SPANS:
        if a <= t <= b:
            return f"{(t - a) * 1000:.0f} ms into a BACKUP of {(b - a) * 1000:.0f} ms"
    return "outside any BACKUP"


_STALLS = (b"compact_stall ", b"allocstall_")


def kernel_stalls() -> int:
    """Times so far (system-wide) a task stopped to compact or reclaim memory
    itself before an allocation (/proc/vmstat compact_stall, allocstall_*)."""
    total = 0
    with open("/proc/vmstat", "rb") as f:
        for line in f:
            if line.startswith(_STALLS):
                total += int(line.split()[1])
    return total


def machine_clock() -> tuple[float, float]:
    """So far, summed over the CPUs: (ms idle, from cpuidle's microsecond
    counters; ms the hypervisor ran something else on them, "steal", from
    /proc/stat's 10 ms ticks). Without cpuidle (no such files) the idle
    figure stays 0 and `attribution` prints no "other work"."""
    idle = 0
    for f in _IDLE:
        with contextlib.suppress(OSError, ValueError):
            idle += int(f.read_text())
    with open("/proc/stat") as stat:
        steal = int(stat.readline().split()[8])
    return idle / 1000, steal * 1000 / os.sysconf("SC_CLK_TCK")


def attribution(parts: list[tuple[float, ...]]) -> str:
    """Mean of each part over the INSERTs over the aim, and over all of them."""
    cpus = os.cpu_count() or 1

    def line(rows: list[tuple[float, ...]], what: str) -> str:
        if not rows:
            return f"{what}: none"
        m = [statistics.fmean(r[k] for r in rows) for k in range(10)]
        rest = m[0] - m[1] - m[2] - m[3] - m[4]
        others = (m[0] * cpus - m[5] - m[1] - m[3]) if _IDLE else float("nan")
        return (f"{what} (n={len(rows)}): wall {m[0]:.1f} ms = server main thread on a CPU "
                f"{m[1]:.1f} + waiting for one {m[2]:.1f}; client on a CPU {m[3]:.1f} + "
                f"waiting {m[4]:.1f}; the rest (server thread blocked: GIL, lock, I/O) {rest:.1f}. "
                f"Meanwhile the {cpus} CPUs were idle {m[5]:.1f} ms and busy with other work "
                f"(the server's other threads, other processes, the kernel, steal) "
                f"{others:.1f} ms; "
                f"steal {m[6]:.1f} ms (in 10 ms ticks); major page faults: the server "
                f"{m[7]:.2f}, the client {m[8]:.2f}; compaction or reclaim stalls {m[9]:.2f}")
    over = [r for r in parts if r[0] > STALL_AIM_MS]
    each = ", ".join(f"{r[0]:.1f} ms (steal {r[6]:.0f} ms, major faults {r[7]:.0f} / {r[8]:.0f}, "
                     f"compaction or reclaim stalls {r[9]:.0f}, the server main thread's minor "
                     f"faults {r[10]:.0f}, {where(r[11])})" for r in over[:12])
    minor = statistics.fmean(r[10] for r in parts) if parts else 0.0
    steal = (f"steal in the INSERTs over the aim {sum(r[6] for r in over):.0f} ms of the "
             f"loop's {sum(r[6] for r in parts):.0f} ms")
    return "\n".join([line(over, "over the aim")]
                     + ([f"each over the aim: {each}; {steal}"] if over else [])
                     + [f"{line(parts, 'all')}; the server main thread's minor faults {minor:.1f}"])


async def backups(http: Any, url: str, stop: asyncio.Event, busy: asyncio.Event,
                  done: list[float]) -> None:
    """Full backups of `big` into fresh targets until `stop`."""
    i = 0
    while not stop.is_set():
        busy.set()
        t0 = time.perf_counter()
        await sql(http, url, f"BACKUP DATABASE big TO 'stall_{os.getpid()}_{i}'")
        done.append(time.perf_counter() - t0)
        SPANS.append((t0, time.perf_counter()))
        i += 1


async def stalls(url: str, pid: int, inserts: int,
                 perf_out: Path | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with session(1) as wr, session(1) as bk:
        await sql(wr, url, "CREATE TABLE big.events (n BIGINT, note TEXT)")
        await insert_loop(wr, url, 0, 200)  # warm-up
        # "Nothing else running" includes the kernel writing out what earlier
        # work (the table's build, an earlier run's backups) left dirty.
        out["dirty_before"] = meminfo_mb("Dirty", "Writeback")
        await asyncio.to_thread(os.sync)
        load0, queued, nice0 = load_avg(), run_queue_ms(pid), by_nice(pid)
        parts: list[tuple[float, ...]] = []
        alone = await insert_loop(wr, url, 1000, inserts, pid=pid, parts=parts)
        out["alone"] = summary(alone, load0)
        out["alone"]["queued_ms"] = (run_queue_ms(pid) - queued) / len(alone)
        out["alone"]["parts"] = attribution(parts)
        out["alone"]["nice"] = nice_delta(by_nice(pid), nice0)
        stop, busy, took = asyncio.Event(), asyncio.Event(), []
        task = asyncio.create_task(backups(bk, url, stop, busy, took))
        dirty = DirtySampler()
        dirty.start()
        perf = OffCpu(pid, perf_out) if perf_out is not None else None
        if perf is not None and not perf.start():
            perf = None
        load0, queued, nice0 = load_avg(), run_queue_ms(pid), by_nice(pid)
        during: list[float] = []
        parts = []
        while len(during) < inserts:
            during += await insert_loop(wr, url, 10**6 + len(during) * 10, 100, busy,
                                        pid=pid, parts=parts)
        nice1 = by_nice(pid)
        if perf is not None:
            perf.stop()
        stop.set()
        await task
        await dirty.stop()
        out["backup"] = {**summary(during[:inserts], load0), "backups": len(took),
                         "queued_ms": (run_queue_ms(pid) - queued) / max(1, len(during)),
                         "backup_s": statistics.median(took) if took else float("nan"),
                         "parts": attribution(parts), "nice": nice_delta(nice1, nice0),
                         "dirty_mb": dirty.peak,
                         "offcpu": perf.summary() if perf is not None else None}
    return out


def summary(ms: list[float], load0: float) -> dict[str, Any]:
    return {"n": len(ms), "p50": pct(ms, 50), "p99": pct(ms, 99), "max": max(ms),
            "over": sum(1 for x in ms if x > STALL_AIM_MS), "load": (load0, load_avg())}


# --- 2. /metrics ---------------------------------------------------------------------

_LINE = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')


def scrape(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


def hist_max(rows: list[tuple[dict[str, str], float]], key: str) -> dict[str, tuple[int, str]]:
    """{label value: (count, smallest bucket bound holding every observation)}."""
    by: dict[str, list[tuple[float, float]]] = {}
    for labels, v in rows:
        bound = labels.get("le")
        if bound is not None:
            by.setdefault(labels.get(key, ""), []).append((float(bound), v))
    out = {}
    for name, pts in by.items():
        pts.sort()
        total = pts[-1][1]
        top = next(b for b, c in pts if c >= total)
        out[name] = (int(total), "inf" if top == float("inf") else f"<= {top * 1000:g} ms")
    return out


async def where_time_went(url: str) -> list[str]:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        m = scrape(await resp.text())
    lines = ["| histogram | label | count | every one |", "|---|---|---:|---|"]
    for name, key in (("cairn_write_phase_seconds_bucket", "phase"),
                      ("cairn_table_lock_wait_seconds_bucket", "lock"),
                      ("cairn_gc_pause_seconds_bucket", "generation")):
        for label, (count, top) in sorted(hist_max(m.get(name, []), key).items()):
            lines.append(f"| {name.removesuffix('_bucket')} | {label} | {count} | {top} |")
    lines += ["", "| longest single one | name | ms |", "|---|---|---:|"]
    for labels, v in sorted(m.get("cairn_write_longest_seconds", []),
                            key=lambda r: (r[0]["what"], -r[1])):
        lines.append(f"| {labels['what']} | {labels['name']} | {v * 1000:.1f} |")
    holds = sorted(m.get("cairn_table_lock_longest_hold_seconds", []), key=lambda r: -r[1])
    cpu = {tuple(sorted(lb.items())): v
           for lb, v in m.get("cairn_table_lock_longest_hold_cpu_seconds", [])}
    lines += ["", "| longest table-lock holds | site | thread | held ms | its CPU ms |",
              "|---|---|---|---:|---:|"]
    for labels, v in holds[:8]:
        c = cpu.get(tuple(sorted(labels.items())), float("nan"))
        lines.append(f"| {labels['lock']} | {labels['site']} | {labels['thread']} "
                     f"| {v * 1000:.1f} | {c * 1000:.1f} |")
    return lines


# --- 3. memory -----------------------------------------------------------------------


async def rss_around(srv: Server, http: Any, url: str, text: str) -> dict[str, Any]:
    before = rss_mb(srv)
    load0 = load_avg()
    with RssSampler(srv.pid) as rss, RssSampler(srv.pid, tree=True) as tree:
        t0 = time.perf_counter()
        body = await sql(http, url, text)
        took = time.perf_counter() - t0
        await asyncio.sleep(2.0)
    return {"text": text, "before": before, "peak": rss.peak_mb, "after": rss_mb(srv),
            "tree_peak": tree.peak_mb, "tree_pss": tree.pss_peak_mb,
            "s": took, "rows": body["results"][-1].get("row_count"), "load": (load0, load_avg())}


async def memory(srv: Server, url: str) -> list[dict[str, Any]]:
    out = []
    async with session(1) as http:
        for text in (
            "SELECT count(*) AS n, sum(v) AS s FROM big.t",
            "SELECT id, v FROM big.t WHERE id = 4242",
            "SELECT id, v, payload FROM big.t WHERE id % 1000 = 7",
            "UPDATE big.t SET v = -v WHERE id % 100 = 0",
            "DELETE FROM big.t WHERE id % 100 = 1",
            "SELECT count(*) AS n FROM big.t WHERE v < 0",
        ):
            out.append(await rss_around(srv, http, url, text))
    return out


async def transfer_memory(srv: Server, url: str) -> list[dict[str, Any]]:
    """RSS around a full BACKUP of `huge` and a RESTORE of it as `huge_r`
    (dropped again, with the backup's target, so the data dir stays as built)."""
    out = []
    target = f"mem_{os.getpid()}"
    async with session(1) as http:
        try:
            out.append(await rss_around(srv, http, url, f"BACKUP DATABASE huge TO '{target}'"))
            out.append(await rss_around(
                srv, http, url, f"RESTORE DATABASE huge FROM '{target}' AS huge_r"))
        finally:
            await sql(http, url, "DROP NAMESPACE IF EXISTS huge_r CASCADE")
            shutil.rmtree(srv.data_dir / "backups" / target, ignore_errors=True)
    return out


# --- report --------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def report(args: argparse.Namespace, st: dict[str, Any] | None, went: list[str],
           mem: list[dict[str, Any]], idle_rss: float) -> None:
    what = (f"BACKUP / RESTORE of {args.backup_mb} MB" if args.backup_mb
            else f"{args.mb} MB table, {args.inserts} INSERTs")
    print(f"bench_writer: server from {args.server_root}, {what}, {os.cpu_count()} CPUs")
    print("\n| figure | aim | this run | | load avg start / end |\n|---|---|---|---|---|")
    for key, label in (("alone", "longest single-row INSERT, nothing else running"),
                       ("backup", "longest single-row INSERT during BACKUPs")):
        if st is None:
            break
        s = st[key]
        print(f"| {label} (p50 / p99 / max, n={s['n']}) | max <= {STALL_AIM_MS:g} ms "
              f"| {s['p50']:.1f} / {s['p99']:.1f} / {s['max']:.1f} ms, {s['over']} over "
              f"| {verdict(s['max'] <= STALL_AIM_MS)} | {s['load'][0]:.2f} / {s['load'][1]:.2f} |")
        print(f"| &nbsp; server threads runnable but not running (waiting for a CPU), per INSERT "
              f"| | {s['queued_ms']:.1f} ms | | |")
    for m in mem:
        # The verdict counts the server's job processes and copiers with it, by
        # PSS (a library both map counted once); the RSS sum counts it twice.
        ok = m["tree_pss"] < RSS_AIM_MB and m["after"] <= m["before"] + 20
        print(f"| RSS before / peak / 2 s after: `{m['text']}` ({m['s']:.2f} s); peak with the "
              f"server's job processes and copiers, PSS (RSS sum) | peak < {RSS_AIM_MB:g} MB, "
              f"after ~ before | {m['before']:.0f} / {m['peak']:.0f} / {m['after']:.0f} MB; "
              f"{m['tree_pss']:.0f} ({m['tree_peak']:.0f}) MB | {verdict(ok)} "
              f"| {m['load'][0]:.2f} / {m['load'][1]:.2f} |")
    print(f"\nRSS idle after start: {idle_rss:.0f} MB.")
    if st is not None:
        print(f"Dirty + Writeback before the loop alone: {st['dirty_before']:.0f} MB (then a "
              "sync, so the kernel was not writing it out during the loop).")
        print(f"Backups during the INSERT loop: {st['backup']['backups']} "
              f"(median {st['backup']['backup_s']:.2f} s each).\n")
        for key in ("alone", "backup"):
            print(f"Per INSERT, {key}:\n{st[key]['parts']}\nServer threads by nice value, "
                  f"{key}: {st[key]['nice']}\n")
        print(f"Most Dirty + Writeback seen during the backups: {st['backup']['dirty_mb']:.0f} MB")
        off = st["backup"]["offcpu"]
        if off:
            print("\n| main thread off the CPU during backups (perf) | total ms "
                  "| in stretches > 5 ms | how many | longest ms |\n|---|---:|---:|---:|---:|")
            for r in REASONS:
                t, lg, k, mx = off[r]
                print(f"| {r} | {t:.0f} | {lg:.0f} | {k} | {mx:.1f} |")
        print()
    print("\n".join(went))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024, help="payload MB of big.t (1024)")
    ap.add_argument("--inserts", type=int, default=2000)
    ap.add_argument("--server-root", default=str(ROOT), help="checkout the server runs from")
    ap.add_argument("--config", help="a cairn.toml for the server")
    ap.add_argument("--memory-only", action="store_true", help="skip the INSERT loops")
    ap.add_argument("--stalls-only", action="store_true", help="skip the memory part")
    ap.add_argument("--perf", action="store_true",
                    help="perf record the server main thread's context switches during "
                         "the backups: why it was off the CPU (needs perf, root)")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--data", help="build the table here once and keep it; each run "
                                   "works on a copy")
    ap.add_argument("--backup-mb", type=int, help="only RSS around BACKUP / RESTORE of a "
                                                  "namespace of this many MB (part 4)")
    ap.add_argument("--backup-data", help="where part 4's namespace is built once and used "
                                          "in place (default: a temp dir)")
    args = ap.parse_args()
    if args.backup_mb:
        return backup_only(args)
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-writer-", dir=args.dir))
    data = tmp / "data"
    srv = None
    try:
        if args.data:
            if not (Path(args.data) / "catalog").exists():
                build(Path(args.data), {"big": args.mb}, 100)
            shutil.copytree(args.data, data)
            os.sync()  # the copy's dirty pages are on disk before any clock starts
        else:
            build(data, {"big": args.mb}, 100)
        srv = Server(data, tmp / "server.log", Path(args.config) if args.config else None,
                     root=Path(args.server_root))
        idle = rss_mb(srv)
        st = None if args.memory_only else asyncio.run(
            stalls(srv.url, srv.pid, args.inserts, tmp / "perf.data" if args.perf else None))
        went = asyncio.run(where_time_went(srv.url))
        mem = [] if args.stalls_only else asyncio.run(memory(srv, srv.url))
        report(args, st, went, mem, idle)
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def backup_only(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-writer-", dir=args.dir))
    data = Path(args.backup_data) if args.backup_data else tmp / "data"
    srv = None
    try:
        if not (data / "catalog").exists():
            build(data, {"huge": args.backup_mb}, 100)
        srv = Server(data, tmp / "server.log", Path(args.config) if args.config else None,
                     root=Path(args.server_root))
        time.sleep(5.0)  # start-up work (RocksDB compactions) settles
        idle = rss_mb(srv)
        mem = asyncio.run(transfer_memory(srv, srv.url))
        report(args, None, [], mem, idle)
    finally:
        if srv is not None:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
