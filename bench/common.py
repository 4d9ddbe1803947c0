"""Shared helpers for the HTTP-level benchmarks (bench_http.py, bench_backup.py):
a real `cairn serve` subprocess, an aiohttp client with keep-alive, percentiles,
an RSS sampler for the server process and a plain-text table printer."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`cairn serve --data-dir DIR --port P` as a subprocess (stderr to a log file),
    from the checkout `root` (its code, cwd and PYTHONPATH; another one for A/B runs)."""

    def __init__(self, data_dir: Path, log_path: Path | None = None,
                 config: Path | None = None, pgwire: bool = False, root: Path = ROOT) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.pg_port = free_port() if pgwire else 0  # 0: no PostgreSQL listener
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or data_dir.parent / "server.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data_dir),
             "--port", str(self.port), "--pg-port", str(self.pg_port), "--log-level", "WARNING",
             *(["--config", str(config)] if config is not None else [])],
            stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=str(root),
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
                # CAIRN_BENCH_SITE: a directory with a sitecustomize.py for the
                # server (e.g. bench/rocksdb_writes_site), before the checkout
                p for p in (os.environ.get("CAIRN_BENCH_SITE"), str(root)) if p)},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("cairn listening"):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}; see {self.log_path}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def session(concurrency: int = 1) -> aiohttp.ClientSession:
    """A keep-alive client: at most `concurrency` connections, reused."""
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=3600))


class SQLError(RuntimeError):
    pass


async def sql(http: aiohttp.ClientSession, url: str, text: str) -> dict[str, Any]:
    """POST one request; the JSON body, or SQLError if it did not succeed."""
    async with http.post(url + "/api/sql", json={"sql": text}) as resp:
        body = await resp.json()
        if resp.status != 200 or body.get("status") != "success":
            raise SQLError(f"{text[:80]!r} -> HTTP {resp.status}: {json.dumps(body)[:500]}")
        return body


async def timed_sql(
    http: aiohttp.ClientSession, url: str, text: str
) -> tuple[float, dict[str, Any]]:
    """(wall milliseconds, body) of one request."""
    t0 = time.perf_counter()
    body = await sql(http, url, text)
    return (time.perf_counter() - t0) * 1000, body


def first_row(body: dict[str, Any]) -> dict[str, Any]:
    return body["results"][-1]["rows"][0]


def pct(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


class RssSampler:
    """Samples VmRSS of a process every `interval` seconds in a thread; `peak_mb`."""

    def __init__(self, pid: int, interval: float = 0.010, tree: bool = False) -> None:
        """`tree`: each sample is the sum over `pid` and every process under
        it (a server's job processes and copiers)."""
        self.pid = pid
        self.interval = interval
        self.tree = tree
        self.samples: list[int] = []  # kB
        self.pss_samples: list[int] = []  # kB, with `tree`
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read_kb(pid: int) -> int:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    @staticmethod
    def descendants(pid: int) -> list[int]:
        """Every process under `pid` (from /proc/*/task/*/children)."""
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            try:
                tids = os.listdir(f"/proc/{p}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{p}/task/{tid}/children") as f:
                        kids = [int(c) for c in f.read().split()]
                except OSError:
                    continue
                out += kids
                todo += kids
        return out

    @staticmethod
    def pss_kb(pid: int) -> int:
        """Proportional set size: shared pages (the libraries a server and its
        job processes both map) divided among the processes that map them."""
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        return 0

    def _sample(self) -> int:
        total = self.read_kb(self.pid)
        if self.tree:
            pss = self.pss_kb(self.pid)
            for child in self.descendants(self.pid):
                try:
                    total += self.read_kb(child)
                    pss += self.pss_kb(child)
                except OSError:
                    continue  # ended meanwhile
            self.pss_samples.append(pss)
        return total

    @property
    def pss_peak_mb(self) -> float:
        return max(self.pss_samples, default=0) / 1024

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self._sample())
            except OSError:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return max(self.samples, default=0) / 1024


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def revision(root: Path = ROOT) -> str:
    """The checkout measured: git HEAD, '+changes' if tracked files outside bench/ differ."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no", "--", ".", ":!bench"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("CAIRN_REVISION", "unknown revision")
    return head + (" +uncommitted changes" if dirty else "")


def machine() -> str:
    import duckdb
    import pyarrow

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"Cairn {revision()}; {os.cpu_count()} CPUs, {ram:.0f} GB RAM, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__}"
    )


def load() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    return f"load average {os.getloadavg()[0]:.2f}"


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    """A plain-text table (also valid Markdown)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))


def run(coro: Any) -> Any:
    return asyncio.run(coro)
