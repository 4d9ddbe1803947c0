"""Load (issue 8, part 5): concurrent clients doing INSERT and SELECT against a
real `cairn serve` for a fixed time while BACKUP, VERIFY BACKUP and RESTORE run
back to back; then a final backup and restore, and a check that every INSERT
the server acknowledged is in the source and in the restored copy.

Each client is a closed loop over one keep-alive connection: half its requests
insert one row (`id = client * 10^9 + n`), half select one acknowledged row by
key. Reported: requests and rows per second, latency percentiles overall and
while a backup / verify / restore was running (a request counts for a window
when the two overlap), and every error. Aims (issue 8): zero errors, p99 under
50 ms while a backup runs.

Before the clock starts the namespace gets `--preload` rows (flushed), so every
backup and restore has real bytes to move; tables keep their default flush
threshold (10 000 rows), so flushes happen under load too.

    python bench/load.py [--clients 16] [--seconds 60] [--preload 200000] [--history N]
        [--tables N]

`--jobs-elsewhere` sends the BACKUP / VERIFY / RESTORE to a second server (its
own process and data dir, the same preload) instead: the loaded server then
shares only the machine with the jobs (CPUs, disk, kernel), not its GIL,
RocksDB or event loop. It measures what moving a job's work into another
process could at best give the p99 beside it. `--jobs-idle` runs that second
server under SCHED_IDLE. `--job-process idle|nice|off` sets the servers'
`[jobs] job_process` (storage/jobproc.py), for A/B runs of the same code.

`--jobs backup` runs only that job in turn (with its quiet windows), and
`--pid-file` writes the server's pid when the timed load starts (what
bench/gil_takes.py attaches perf to). `--ablate buffer,keep_last,store,purge,pin,fsync`
takes those parts of a BACKUP out of the loaded server
(bench/ablations/sitecustomize.py): never a correct backup, a way to see which
part the p99 beside a BACKUP follows.

`tests/proof/test_load.py` runs the same `run_load` for 10 s with 8 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cairn_process import CairnProcess, write_config  # noqa: E402 (after the path)

ID_STRIDE = 10**9
JOB_KINDS = ("backup", "verify", "restore")  # --jobs: which of them run
ABLATE: set[str] = set()  # --ablate: parts of a BACKUP taken out (bench/ablations)
PID_FILE: Path | None = None  # --pid-file: the server's pid, once the timed load starts
TABLES = 1  # --tables: load.t and TABLES - 1 more, each with a row buffered
# Issue 15's starting point: 16 clients, mixed INSERT/SELECT, req/s.
BASELINE_RPS = 277


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    op: str  # insert | select
    start: float
    end: float
    ok: bool


@dataclass
class LoadReport:
    clients: int
    seconds: float
    preload: int
    samples: list[Sample] = field(default_factory=list)
    windows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    acked: int = 0
    missing_in_source: int = 0
    missing_in_restore: int = 0
    final_rows: int = 0
    jobs: Counter[str] = field(default_factory=Counter)
    server_cpu_s: float = 0.0  # the server process's user + system CPU over the timed load
    client_cpu_s: float = 0.0  # this (client) process's user + system CPU over the same time
    load_avg: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at start and end
    with_jobs: bool = True
    # Alternating (the default): each job is followed by a quiet window as long
    # as the job took, and a request counts for a window only when it started
    # and ended inside it ; else jobs run back to back and a
    # request counts for every window it overlaps (the old comparison).
    alternate: bool = True
    jobs_url: str | None = None  # --jobs-elsewhere: the second server the jobs go to
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # window kind -> part -> CPU s

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def latencies(self, during: str | None = None, op: str | None = None) -> list[float]:
        wins = self.windows.get(during or "", [])
        out = []
        for s in self.samples:
            if op is not None and s.op != op:
                continue
            if during is not None and not any(
                    (a <= s.start and s.end <= b) if self.alternate else (s.start < b and s.end > a)
                    for a, b in wins):
                continue
            out.append((s.end - s.start) * 1000)
        return sorted(out)

    def table(self) -> str:
        n = len(self.samples)
        inserts = sum(1 for s in self.samples if s.op == "insert" and s.ok)
        lines = [
            (f"load: {self.clients} clients, {self.seconds:.0f} s, preload {self.preload} rows, "
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}"),
            "",
            "| figure | value |", "|---|---:|",
            f"| requests | {n} |",
            f"| throughput | {n / self.seconds:.0f} req/s |",
            f"| acknowledged INSERTs | {inserts} ({inserts / self.seconds:.0f} rows/s) |",
            f"| errors | {self.error_count} |",
            (f"| server CPU per request | {1000 * self.server_cpu_s / max(1, n):.2f} ms "
             f"({self.server_cpu_s / self.seconds:.2f} cores) |"),
            (f"| client CPU per request | {1000 * self.client_cpu_s / max(1, n):.2f} ms "
             f"({self.client_cpu_s / self.seconds:.2f} cores) |"),
            f"| load average at start / end | {self.load_avg[0]:.2f} / {self.load_avg[1]:.2f} |",
        ]
        for kind, count in sorted(self.errors.items()):
            lines.append(f"| &nbsp; {kind} | {count} |")
        for job, count in sorted(self.jobs.items()):
            lines.append(f"| {job} jobs run during the load | {count} |")
        lines += [
            f"| acknowledged INSERTs missing from the source | {self.missing_in_source} |",
            ("| acknowledged INSERTs missing after final backup + restore "
             f"| {self.missing_in_restore} |"),
            "",
            "| latency, ms | requests | p50 | p95 | p99 | max |", "|---|---:|---:|---:|---:|---:|",
        ]
        rows = [("all requests", None, None), ("INSERT", None, "insert"),
                ("SELECT", None, "select"), ("while a BACKUP runs", "backup", None),
                ("while a VERIFY runs", "verify", None), ("while a RESTORE runs", "restore", None),
                ("while no job runs", "idle", None)]
        for label, during, op in rows:
            lat = self.latencies(during, op)
            if lat:
                lines.append(f"| {label} | {len(lat)} | {pct(lat, 50):.1f} | {pct(lat, 95):.1f} "
                             f"| {pct(lat, 99):.1f} | {lat[-1]:.1f} |")
        if self.with_jobs:
            lines += ["", self.windows_line(), *self.lost_lines(), *self.cpu_table()]
        return "\n".join(lines + ["", *self.aims()])

    def windows_line(self) -> str:
        parts = []
        for kind in ("backup", "verify", "restore", "idle"):
            wins = self.windows.get(kind, [])
            span = sum(b - a for a, b in wins)
            parts.append(f"{kind} {len(wins)} windows, {span:.1f} s, "
                         f"{len(self.latencies(kind)) / (span or 1):.0f} req/s")
        rule = ("alternating: each job then a quiet window as long as it took; a request "
                "counts only inside one window" if self.alternate else
                "jobs back to back; a request counts for every window it overlaps")
        counted = sum(len(self.latencies(k)) for k in ("backup", "verify", "restore", "idle"))
        return (f"windows ({rule}): " + "; ".join(parts)
                + f"; requests counted {counted} of {len(self.samples)}")

    def lost_lines(self) -> list[str]:
        """What each job cost the statements in all: the requests its windows
        did not serve against the quiet windows' rate. The p99 ratio is a
        job's cost a second of it; a job made shorter by doing less can keep
        that ratio and still cost less (docs/performance.md, 2026-12-05)."""
        if not self.alternate:
            return []
        quiet = self.windows.get("idle", [])
        quiet_span = sum(b - a for a, b in quiet)
        if not quiet_span:
            return []
        rate = len(self.latencies("idle")) / quiet_span
        out = []
        for kind in ("backup", "verify", "restore"):
            wins = self.windows.get(kind, [])
            span = sum(b - a for a, b in wins)
            if wins and span:
                lost = (rate - len(self.latencies(kind)) / span) * span / len(wins)
                each = 1000 * span / len(wins)
                out.append(f"requests the statements lost a {kind.upper()} (quiet req/s - "
                           f"{kind} req/s) x its window: {lost:.1f}, over {each:.0f} ms")
        return out

    def cpu_table(self) -> list[str]:
        """The server's CPU per second of each window kind, by part (main thread,
        its other threads by name, its child processes: the copiers)."""
        if not self.cpu:
            return []
        parts = sorted({p for c in self.cpu.values() for p in c})
        kinds = [k for k in ("backup", "verify", "restore", "idle") if k in self.cpu]
        lines = ["", "| server CPU, ms per second of window | " + " | ".join(kinds) + " |",
                 "|---|" + "---:|" * len(kinds)]
        for part in parts:
            cells = []
            for k in kinds:
                span = sum(b - a for a, b in self.windows.get(k, [])) or 1.0
                cells.append(f"{1000 * self.cpu[k].get(part, 0.0) / span:.0f}")
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
        return lines

    def aims(self) -> list[str]:
        """Issue 15's aims beside the figures of this run."""
        rate = len(self.samples) / self.seconds
        lines = ["| figure (issue 15) | aim | this run | |", "|---|---|---|---|",
                 (f"| req/s, {self.clients} clients | >= {3 * BASELINE_RPS} (3x {BASELINE_RPS}) "
                  f"| {rate:.0f} ({rate / BASELINE_RPS:.2f}x) "
                  f"| {'met' if rate >= 3 * BASELINE_RPS else 'missed'} |")]
        quiet = self.latencies("idle")
        idle = pct(quiet, 99)
        for kind in ("backup", "verify", "restore"):
            during = self.latencies(kind)
            busy = pct(during, 99)
            if not (self.with_jobs and busy == busy and idle == idle):
                continue
            ratio = busy / idle
            aim = kind == "backup"
            lines.append(f"| p99 while a {kind.upper()} runs / while no job runs "
                         f"| {'<= 1.1' if aim else '(no aim)'} "
                         f"| {busy:.1f} ms ({len(during)} requests) / {idle:.1f} ms "
                         f"({len(quiet)}) = {ratio:.2f} "
                         f"| {('met' if ratio <= 1.1 else 'missed') if aim else ''} |")
        return lines


def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


async def _post(http: aiohttp.ClientSession, url: str, text: str) -> tuple[int, dict[str, Any]]:
    async with http.post(url + "/api/sql", json={"sql": text}) as resp:
        return resp.status, await resp.json(content_type=None)


async def _client(index: int, http: aiohttp.ClientSession, url: str, deadline: float,
                  report: LoadReport, acked: list[int], rng: random.Random) -> None:
    n = 0
    payload = rng.randbytes(32).hex()
    while time.monotonic() < deadline:
        if rng.random() < 0.5 or not acked:
            op = "insert"
            row_id = index * ID_STRIDE + n
            n += 1
            text = f"INSERT INTO load.t VALUES ({row_id}, {index}, '{payload}')"
        else:
            op = "select"
            row_id = acked[rng.randrange(len(acked))]
            text = f"SELECT id, client, v FROM load.t WHERE id = {row_id}"
        start = time.monotonic()
        try:
            status, body = await _post(http, url, text)
            good = status == 200 and body.get("status") == "success"
            if good and op == "select" and len(body["results"][0]["rows"]) != 1:
                good = False
                report.errors["SELECT of an acknowledged row found nothing"] += 1
            elif not good:
                report.errors[f"{op} {status} {body.get('error', {}).get('code')}"] += 1
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            good = False
            report.errors[f"{op} {type(exc).__name__}"] += 1
        end = time.monotonic()
        report.samples.append(Sample(op, start, end, good))
        if good and op == "insert":
            acked.append(row_id)


# The main thread's sleeps: with 16 clients it always has a request to run,
# so each is a wait for the GIL (or a lock) a job's thread holds (perf
# showed them in futex); docs/performance.md, "The event loop's GIL beside a
# BACKUP". A count per second in the table, not ms.
SLEEPS = "main thread, sleeps a second (a count, not ms)"
# Not the server's CPU: the time the hypervisor took the virtual CPUs away
# (all of them), so a window's latency can be set against it.
STEAL = "the machine's steal, all CPUs (not the server's)"


def server_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of the server process by part: its main thread, its
    other threads by name (digits dropped), its live child processes (the
    copiers, the archive's helper); and the machine's steal (`STEAL`). Linux
    /proc; children that ended are gone."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    children: list[str] = []
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            children += Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        name = "".join(ch for ch in text[text.index("(") + 1:text.rindex(")")] if not ch.isdigit())
        fields = text.rsplit(")", 1)[1].split()
        part = "main thread" if tid == str(pid) else f"thread {name}"
        out[part] = out.get(part, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        if tid == str(pid):
            try:  # schedstat: ns on a CPU, ns runnable but waiting for one, timeslices
                waited = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1])
                out["main thread, runnable, waiting for a CPU"] = waited / 1e9
                status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
                sleeps = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
                out[SLEEPS] = sleeps / 1000  # the table shows a thousandth per second as ms
            except (OSError, IndexError, ValueError):
                pass
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / tick
        out["child processes"] = out.get("child processes", 0.0) + used
    try:  # not the server's: what the hypervisor ran on the CPUs instead (10 ms ticks)
        with open("/proc/stat") as stat:
            out[STEAL] = int(stat.readline().split()[8]) / tick
    except (OSError, IndexError, ValueError):
        pass
    return out


class _Windows:
    """Records a window of `kind` from `start` to now, with the server's CPU
    (by part) used in it."""

    def __init__(self, report: LoadReport, pid: int | None) -> None:
        self.report, self.pid = report, pid
        self.cpu = server_cpu(pid) if pid else {}

    def close(self, kind: str, start: float) -> None:
        self.report.windows.setdefault(kind, []).append((start, time.monotonic()))
        if self.pid:
            now = server_cpu(self.pid)
            used = self.report.cpu.setdefault(kind, {})
            for part, value in now.items():
                used[part] = used.get(part, 0.0) + max(0.0, value - self.cpu.get(part, 0.0))
            self.cpu = now


async def _jobs(http: aiohttp.ClientSession, url: str, deadline: float,
                report: LoadReport, pid: int | None = None) -> None:
    """BACKUP, VERIFY, RESTORE (replace) until the deadline: back to back, or
    (`report.alternate`) each followed by a quiet window as long as it took,
    so both sides get the same time, the same clients and the same drift of
    the table's size and flushes."""
    cycle = 0
    windows = _Windows(report, pid)
    while time.monotonic() < deadline:
        cycle += 1
        backup_id = None
        for job, text in (
            ("backup", "BACKUP DATABASE load TO 'loadbk' WITH (keep_last = 3)"),
            ("verify", "VERIFY BACKUP '{id}' IN 'loadbk'"),
            ("restore", ("RESTORE DATABASE load FROM 'loadbk' AS load_copy "
                         "WITH (backup_id = '{id}', replace = true)")),
        ):
            if time.monotonic() >= deadline:
                return
            if job not in JOB_KINDS:
                continue
            start = time.monotonic()
            try:
                status, body = await _post(http, report.jobs_url or url,
                                           text.format(id=backup_id))
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                report.errors[f"{job} {type(exc).__name__}"] += 1
                return
            windows.close(job, start)
            if status != 200:
                report.errors[f"{job} {status} {body.get('error', {}).get('code')}"] += 1
                return
            report.jobs[job] += 1
            row = body["results"][0]["rows"][0]
            if job == "backup":
                backup_id = row["backup_id"]
            if job == "verify" and row["is_valid"] is not True:
                report.errors[f"verify said invalid: {row['errors'][:2]}"] += 1
            if report.alternate:
                quiet = time.monotonic()
                await asyncio.sleep(quiet - start)
                windows.close("idle", quiet)
        if not report.alternate:
            quiet = time.monotonic()
            await asyncio.sleep(0.2)
            windows.close("between", quiet)


def _idle_windows(report: LoadReport, begin: float, end: float) -> list[tuple[float, float]]:
    busy = sorted(w for job in ("backup", "verify", "restore") for w in report.windows.get(job, []))
    idle, at = [], begin
    for a, b in busy:
        if a > at:
            idle.append((at, a))
        at = max(at, b)
    if at < end:
        idle.append((at, end))
    return idle


async def _preload(http: aiohttp.ClientSession, url: str, preload: int, seed: int) -> None:
    rng = random.Random(seed)
    setup = ("CREATE NAMESPACE load;"
             "CREATE TABLE load.t (id BIGINT PRIMARY KEY, client INT, v TEXT)")
    status, body = await _post(http, url, setup)
    assert status == 200, body
    batch = 5000
    for first in range(0, preload, batch):
        values = ", ".join(f"({-(first + i) - 1}, -1, '{rng.randbytes(50).hex()}')"
                           for i in range(min(batch, preload - first)))
        status, body = await _post(http, url, f"INSERT INTO load.t VALUES {values}")
        assert status == 200, body
    status, body = await _post(http, url, "FLUSH TABLE load.t")
    assert status == 200, body
    for i in range(1, TABLES):  # `--tables`: more tables nobody writes to, a row buffered each
        status, body = await _post(http, url, (
            f"CREATE TABLE load.x{i} (id BIGINT PRIMARY KEY, v TEXT);"
            f"INSERT INTO load.x{i} VALUES " + ", ".join(f"({k}, 'v{k}')" for k in range(100))
            + f"; FLUSH TABLE load.x{i}; INSERT INTO load.x{i} VALUES (-1, 'buffered')"))
        assert status == 200, body


async def _run(srv: CairnProcess, clients: int, seconds: float, preload: int,
               seed: int, with_jobs: bool = True, alternate: bool = True,
               elsewhere: CairnProcess | None = None) -> LoadReport:
    report = LoadReport(clients, seconds, preload, with_jobs=with_jobs, alternate=alternate)
    timeout = aiohttp.ClientTimeout(total=120)
    conn = aiohttp.TCPConnector(limit=clients + 2)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as http:
        await _preload(http, srv.url, preload, seed)
        if elsewhere is not None:
            await _preload(http, elsewhere.url, preload, seed)
            report.jobs_url = elsewhere.url

        acked: list[int] = []
        if PID_FILE is not None:
            PID_FILE.write_text(str(srv.pid))
        load0, cpu0, mine0 = os.getloadavg()[0], cpu_seconds(srv.pid), cpu_seconds(os.getpid())
        begin = time.monotonic()
        deadline = begin + seconds
        tasks = [_client(i + 1, http, srv.url, deadline, report, acked,
                         random.Random(seed * 1000 + i)) for i in range(clients)]
        if with_jobs:
            tasks.append(_jobs(http, srv.url, deadline, report, srv.pid))
        await asyncio.gather(*tasks)
        report.seconds = time.monotonic() - begin
        report.server_cpu_s = cpu_seconds(srv.pid) - cpu0
        report.client_cpu_s = cpu_seconds(os.getpid()) - mine0
        report.load_avg = (load0, os.getloadavg()[0])
        if not report.alternate:
            report.windows["idle"] = _idle_windows(report, begin, begin + report.seconds)
        report.acked = len(acked)

        # Every acknowledged INSERT: in the source, and after a final backup + restore.
        wanted = set(acked)
        report.missing_in_source = len(wanted - await _ids(http, srv.url, "load"))
        for text in ("BACKUP DATABASE load TO 'loadbk'",
                     "RESTORE DATABASE load FROM 'loadbk' AS load_final"):
            status, body = await _post(http, srv.url, text)
            if status != 200:
                report.errors[f"final: {text.split()[0]} {status} {body.get('error')}"] += 1
                report.missing_in_restore = len(wanted)
                return report
        restored = await _ids(http, srv.url, "load_final")
        report.final_rows = len(restored)
        report.missing_in_restore = len(wanted - restored)
    return report


async def _ids(http: aiohttp.ClientSession, url: str, ns: str) -> set[int]:
    status, body = await _post(http, url, f"SELECT id FROM {ns}.t WHERE id >= 0")
    assert status == 200, body
    return {r["id"] for r in body["results"][0]["rows"]}


def write_history(catalog_dir: Path, count: int) -> None:
    """`count` finished jobs (BACKUPs of a day ago) in a new server's catalog."""
    from catalog import Catalog, Job, utcnow

    catalog_dir.parent.mkdir(parents=True, exist_ok=True)
    cat = Catalog(catalog_dir)
    try:
        batch = cat.batch()
        for i in range(count):
            batch.put(Job(f"job-0{i:09d}", "backup", status="completed", namespace="load",
                          target="file:///elsewhere/loadbk", finished_at=utcnow(),
                          statement="BACKUP DATABASE load TO 'loadbk' WITH (keep_last = 3)",
                          fraction_completed=1.0, files_done=3, files_total=3, rows=50_000,
                          result={"backup_id": f"bk-{i}", "rows": 50_000, "files": 3}))
            if batch.count >= 1000:
                batch.commit()
        batch.commit()
    finally:
        cat.close()


def sched_idle(pid: int) -> None:
    """Every thread of `pid` under SCHED_IDLE (threads and processes it starts
    later inherit it): it runs only on a CPU nothing else wants."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setscheduler(int(tid), os.SCHED_IDLE, os.sched_param(0))


def run_load(workdir: Path, clients: int = 16, seconds: float = 60.0, preload: int = 200_000,
             seed: int = 8, with_jobs: bool = True, root: Path = ROOT,
             inline: bool = True, event_loop: str | None = None,
             alternate: bool = True, history: int = 0,
             jobs_elsewhere: bool = False, jobs_idle: bool = False,
             job_process: str | None = None,
             background_nice: int | None = None) -> LoadReport:
    """One load run against a fresh `cairn serve` in `workdir` (made empty first);
    `inline` is `[server] inline_statements` (the server's default: true),
    `event_loop` `[server] event_loop` (None: not set, the server's default),
    `alternate` whether each job is followed by a quiet window as long as it
    (else jobs run back to back), `history` how many finished jobs the server's
    catalog holds when it starts (a server that has run a while),
    `jobs_elsewhere` whether the jobs go to a second server (module doc),
    `jobs_idle` whether that server runs under SCHED_IDLE (module doc),
    `job_process` the servers' `[jobs] job_process` and `background_nice`
    their `[jobs] background_nice` (None: not set, the default)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    cfg = write_config(workdir / "cairn.toml", workdir / "backups", 0)
    loop = f'event_loop = "{event_loop}"\n' if event_loop else ""
    jobs = "".join([f'job_process = "{job_process}"\n' if job_process else "",
                    f"background_nice = {background_nice}\n" if background_nice is not None
                    else ""])
    jobs = f"\n[jobs]\n{jobs}" if jobs else ""
    cfg.write_text(cfg.read_text()
                   + f"\n[server]\ninline_statements = {str(inline).lower()}\n{loop}{jobs}")
    if history:
        write_history(workdir / "data" / "catalog", history)
    srv = CairnProcess(workdir / "data", cfg, workdir / "server.log", root=root)
    if ABLATE:  # bench/ablations/sitecustomize.py, in the loaded server only
        srv.env["CAIRN_ABLATE"] = ",".join(sorted(ABLATE))
        srv.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench" / "ablations"), str(root)])
        if "pin" in ABLATE:
            os.sched_setaffinity(0, {1})  # this client beside the server's threads
    srv.start()
    other = None
    try:
        if jobs_elsewhere:
            (workdir / "elsewhere").mkdir()
            cfg2 = write_config(workdir / "elsewhere" / "cairn.toml",
                                workdir / "elsewhere" / "backups", 0)
            other = CairnProcess(workdir / "elsewhere" / "data", cfg2,
                                 workdir / "elsewhere" / "server.log", root=root).start()
            if jobs_idle:
                sched_idle(other.pid)
        return asyncio.run(_run(srv, clients, seconds, preload, seed, with_jobs, alternate,
                                other))
    finally:
        srv.stop()
        if other is not None:
            other.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--preload", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--no-jobs", action="store_true",
                        help="clients only: no BACKUP / VERIFY / RESTORE during the load")
    parser.add_argument("--back-to-back", action="store_true",
                        help="jobs back to back (a job ~85%% of the time) and a request "
                             "counted for every window it overlaps, as before 2026-12-02; "
                             "default: each job then a quiet window as long as it took")
    parser.add_argument("--tables", type=int, default=1,
                        help="tables in the namespace: load.t and TABLES - 1 others, each "
                             "with 100 rows flushed and one buffered, that no client writes")
    parser.add_argument("--history", type=int, default=0,
                        help="finished jobs in the server's catalog at its start (default 0)")
    parser.add_argument("--jobs-elsewhere", action="store_true",
                        help="the jobs run on a second server process (same preload), "
                             "not on the loaded one: only the machine is shared")
    parser.add_argument("--jobs-idle", action="store_true",
                        help="with --jobs-elsewhere: the second server under SCHED_IDLE")
    parser.add_argument("--job-process", choices=("idle", "nice", "off"),
                        help="[jobs] job_process (default: not set, the server's own "
                             "default; a checkout from before the key would refuse it)")
    parser.add_argument("--background-nice", type=int,
                        help="[jobs] background_nice (default: not set, the server's own)")
    parser.add_argument("--busy-loops", type=int, default=0,
                        help="this many shell busy loops at normal priority beside the "
                             "load (a machine with every CPU busy: how the jobs fare)")
    parser.add_argument("--workdir", help="default: a fresh temp dir, removed afterwards")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--server-root", default=str(ROOT),
                        help="the checkout the server runs from (another one for A/B runs)")
    parser.add_argument("--inline", choices=("on", "off"), default="on",
                        help="[server] inline_statements: one-row statements on the "
                             "server's event loop (on, the default) or on its threads")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"),
                        help="[server] event_loop (default: not set, the server's own "
                             "default; a checkout from before the key would refuse it)")
    parser.add_argument("--jobs", default="backup,verify,restore",
                        help="which jobs run in turn (default: all three; VERIFY and "
                             "RESTORE need BACKUP)")
    parser.add_argument("--pid-file", help="write the server's pid here when the timed "
                                            "load starts (for perf: bench/gil_takes.py)")
    parser.add_argument("--ablate", default="",
                        help="comma-separated parts of a BACKUP to take out of the loaded "
                             "server, to see which the p99 beside it follows: buffer, "
                             "keep_last, store, purge, pin, fsync "
                             "(bench/ablations/sitecustomize.py; never correct: with buffer "
                             "or store the final restore check fails on purpose)")
    args = parser.parse_args()
    global JOB_KINDS, PID_FILE, ABLATE, TABLES
    TABLES = args.tables
    ABLATE = {a for a in args.ablate.split(",") if a}
    JOB_KINDS = tuple(args.jobs.split(","))
    PID_FILE = Path(args.pid_file) if args.pid_file else None
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="cairn-load-")
    workdir = Path(args.workdir or tmp or ".") / "load"
    busy = [subprocess.Popen(["sh", "-c", "while :; do :; done"])
            for _ in range(args.busy_loops)]
    try:
        report = run_load(workdir, args.clients, args.seconds, args.preload, args.seed,
                          not args.no_jobs, Path(args.server_root), args.inline == "on",
                          args.event_loop, not args.back_to_back, args.history,
                          args.jobs_elsewhere, args.jobs_idle, args.job_process,
                          args.background_nice)
    finally:
        for b in busy:
            b.kill()
            b.wait()
    print(f"server from {args.server_root}, inline_statements = {args.inline == 'on'}, "
          f"event_loop = {args.event_loop or 'the default'}, job history {args.history}, "
          f"tables {args.tables}"
          + (", jobs on a second server" if args.jobs_elsewhere else "")
          + (" under SCHED_IDLE" if args.jobs_idle else "")
          + (f", job_process = {args.job_process}" if args.job_process else "")
          + (f", background_nice = {args.background_nice}"
             if args.background_nice is not None else "")
          + (f", {args.busy_loops} busy loops beside it" if args.busy_loops else "")
          + (f", ablated: {', '.join(sorted(ABLATE))}" if ABLATE else ""))
    print(report.table())
    if args.json:
        lat = {k: pct(report.latencies(k), 99) for k in ("backup", "verify", "restore", "idle")}
        print(json.dumps({"requests": len(report.samples), "errors": report.error_count,
                          "p99_all": pct(report.latencies(), 99), "p99_during": lat,
                          "missing": report.missing_in_restore}))
    bad = report.error_count or report.missing_in_source or report.missing_in_restore
    if tmp and not bad:
        shutil.rmtree(tmp, ignore_errors=True)
    elif bad:
        print(f"\nserver log kept in {workdir / 'server.log'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
