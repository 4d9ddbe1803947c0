"""Where a slow INSERT's time went, seen from outside the server (bench_writer.py).

- `thread_clock(pid, tid)`: a thread's CPU time and run-queue wait (runnable but
  not running) from /proc/<pid>/task/<tid>/schedstat, read before and after each
  INSERT for the server's main thread (where one-row statements run with
  `[server] inline_statements = true`) and the client's own thread: what is
  left of the INSERT's wall time is time the server's thread was blocked (the
  GIL, a lock, I/O) or idle while the client ran.
- `by_nice(pid)`: the run-queue wait summed over the server's threads by their
  nice value (statement threads at 0, jobs at `[jobs] background_nice`).
- `DirtySampler`: the most Dirty + Writeback memory seen in /proc/meminfo.
- `OffCpu`: `perf record -e sched:sched_switch -g` on the server while the loop
  runs; `OffCpu.summary` splits the main thread's time off the CPU by why it
  left it (preempted; asleep in a futex: the GIL or a lock; in epoll: waiting
  for the next request; in the file system or the block layer; other), from
  the kernel stack at each switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def thread_clock(pid: int, tid: int) -> tuple[float, float]:
    """(ms on a CPU, ms runnable but waiting for one) of a thread so far."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        return int(fields[0]) / 1e6, int(fields[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def own_clock(tid: int) -> tuple[float, float]:
    """`thread_clock` of the calling thread: its CPU time from clock_gettime, as
    schedstat's first field is not brought up to date for a running thread."""
    return time.thread_time() * 1000, thread_clock(os.getpid(), tid)[1]


def by_nice(pid: int) -> dict[int, tuple[float, float]]:
    """{nice: (ms on a CPU, ms waiting for one)} summed over the process's threads."""
    out: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            nice = os.getpriority(os.PRIO_PROCESS, int(task.name))
        except (OSError, ValueError):
            continue
        cpu, queued = thread_clock(pid, int(task.name))
        out[nice][0] += cpu
        out[nice][1] += queued
    return {k: (v[0], v[1]) for k, v in out.items()}


def nice_delta(after: dict[int, tuple[float, float]],
               before: dict[int, tuple[float, float]]) -> str:
    """'nice 0: CPU a ms, waited b ms; nice 10: ...' (threads that came and went
    between the two readings are counted only where they were seen)."""
    parts = []
    for nice in sorted(after):
        c0, q0 = before.get(nice, (0.0, 0.0))
        c1, q1 = after[nice]
        parts.append(f"nice {nice}: CPU {c1 - c0:.0f} ms, waited for a CPU {q1 - q0:.0f} ms")
    return "; ".join(parts)


def meminfo_mb(*keys: str) -> float:
    want = set(keys)
    total = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in want:
            total += int(rest.split()[0])
    return total / 1024


class DirtySampler:
    """The largest Dirty + Writeback (MB) seen every 20 ms while running."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, meminfo_mb("Dirty", "Writeback"))
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- perf: why the main thread was off the CPU -----------------------------------

_HEAD = re.compile(r"^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_switch:\s+(.*)$")
_FIELDS = re.compile(r"(\w+)=(\S+)")
REASONS = ("preempted", "futex (GIL, lock)", "epoll (idle)", "file system / block I/O",
           "memory", "other")


def _reason(state: str, frames: list[str]) -> str:
    if state.startswith("R"):
        return "preempted"
    text = " ".join(frames)
    if "futex" in text:
        return "futex (GIL, lock)"
    if "ep_poll" in text or "epoll" in text:
        return "epoll (idle)"
    if any(k in text for k in ("ext4", "jbd2", "blk", "balance_dirty", "filemap",
                               "folio_wait", "io_schedule", "wait_on_page")):
        return "file system / block I/O"
    if any(k in text for k in ("page_fault", "mmap", "munmap", "madvise", "rwsem")):
        return "memory"
    return "other"


class OffCpu:
    """`perf record` of the server's context switches while the loop runs."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        if shutil.which("perf") is None:
            return False
        self.proc = subprocess.Popen(
            # System-wide, filtered in the kernel to the main thread's switches
            # (with -p the switch back in, recorded in another task, is lost).
            ["perf", "record", "-q", "-a", "-e", "sched:sched_switch", "--filter",
             f"prev_pid == {self.pid} || next_pid == {self.pid}", "-g", "-o", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return True

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)  # SIGINT: perf writes its file and exits
            self.proc.wait(60)

    def summary(self) -> dict[str, Any]:
        """The main thread's time off the CPU by reason: {reason: (total ms, ms
        in stretches longer than 5 ms, how many, the longest)}."""
        tid = self.pid
        text = subprocess.run(["perf", "script", "-i", str(self.out)],
                              capture_output=True, text=True, check=False).stdout
        total: dict[str, float] = defaultdict(float)
        long: dict[str, list[float]] = defaultdict(list)
        left: tuple[float, str] | None = None  # (when the thread left the CPU, why)
        for block in text.split("\n\n"):
            lines = block.strip("\n").splitlines()
            if not lines:
                continue
            m = _HEAD.match(lines[0])
            if m is None:
                continue
            when = float(m.group(4)) * 1000
            f = dict(_FIELDS.findall(m.group(5)))
            if f.get("prev_pid") == str(tid):
                frames = [ln.split()[1] for ln in lines[1:] if len(ln.split()) > 1]
                left = (when, _reason(f.get("prev_state", ""), frames))
            elif f.get("next_pid") == str(tid) and left is not None:
                ms = when - left[0]
                total[left[1]] += ms
                if ms > 5:
                    long[left[1]].append(ms)
                left = None
        return {r: (total.get(r, 0.0), sum(long.get(r, [])), len(long.get(r, [])),
                    max(long.get(r, [0.0])))
                for r in REASONS}
