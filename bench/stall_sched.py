"""Where a single-row INSERT's time goes during a BACKUP, thread by thread
(issue 15): one client sends `--inserts` INSERTs one after the other while
full BACKUPs of the 1 GiB namespace run back to back, and `perf record`
(system-wide, CLOCK_MONOTONIC, sched_switch and sched_wakeup with kernel
stacks) follows every thread. For each INSERT (the client's send to its
answer) the server's main thread (where one-row statements run) was:

- on a CPU;
- runnable but not running, and what the CPUs ran meanwhile: the server's
  lowered threads (`server-bg`), copier processes (`copier`), the bench's
  client, other processes;
- asleep: in a futex (the GIL or a lock), woken by one of the server's lowered
  threads (`server-bg`: the GIL handed back by a backup thread) or by a timer
  (`other`: the GIL's 5 ms switch interval ran out while another thread held
  it); in epoll (waiting for the client).

It prints those per INSERT over all of them, and one line per INSERT slower
than `--over` ms. Needs perf and root.

Beside perf's view (wall-clock time between context switches), each INSERT
also gets the main thread's own clock (/proc/.../schedstat: time on a CPU
and waiting for one, which the kernel counts without the time the hypervisor
took the virtual CPU away, "steal") and the steal time of every CPU
(/proc/stat). A thread that perf saw on a CPU for 15 ms while its own clock
moved 3 ms lost 12 ms to the hypervisor: from inside it looks blocked.
`--alone` runs the loop with no BACKUP. Each futex sleep of the main thread
over 5 ms is listed with what the thread that woke it did meanwhile (on a CPU,
runnable, asleep) and its kernel stack; with `--stacks` its user stack too,
from a second perf of the server's wake-ups with DWARF unwinding (~300 MB
for 2,000 INSERTs; ~30 s to print).

    python bench/stall_sched.py --data DIR [--server-root CHECKOUT] [--inserts 2000] [--alone]
        [--stacks]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backup import build
from common import ROOT, Server, session, sql

_HEAD = re.compile(r"^\s*(\S.*?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(sched:\S+):\s+(.*)$")
_FIELDS = re.compile(r"(\w+)=(\S+)")


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def steal_ms() -> list[float]:
    """Each CPU's steal time so far (ms; /proc/stat counts it in clock ticks)."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            out.append(int(line.split()[8]) * _TICK_MS)
    return out


def main_clock(pid: int) -> tuple[float, float]:
    """(ms on a CPU, ms runnable) of the server's main thread, by its own clock."""
    try:
        fields = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
        return int(fields[0]) / 1e6, int(fields[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


async def asleep(pid: int) -> float:
    """Wait (up to 5 ms) until the server's main thread is off its CPU, so that
    its schedstat is exact (the kernel brings it up to date at each switch, not
    while the thread runs); the time then (perf's clock)."""
    stat = Path(f"/proc/{pid}/task/{pid}/stat")
    for _ in range(25):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] != "R":
                break
        except (OSError, IndexError):
            break
        await asyncio.sleep(0.0002)
    return time.perf_counter()


async def loop(url: str, out: str, inserts: int, pid: int, alone: bool,
               stacks: bool) -> dict[str, Any]:
    times: list[tuple[float, float]] = []
    # per INSERT: from, to (both with the main thread off its CPU), its CPU and
    # run-queue time by its own clock meanwhile, the steal of both CPUs meanwhile
    clocks: list[tuple[float, float, float, float, float]] = []
    took: list[tuple[float, float]] = []
    async with session(1) as wr, session(1) as bk:
        await sql(wr, url, "CREATE TABLE big.events (n BIGINT, note TEXT)")
        for i in range(200):  # warm-up
            await sql(wr, url, f"INSERT INTO big.events (n, note) VALUES ({i}, 'w')")
        stop = asyncio.Event()

        async def backups() -> None:
            i = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                await sql(bk, url, f"BACKUP DATABASE big TO 'sched_{os.getpid()}_{i}'")
                took.append((t0, time.perf_counter()))
                i += 1

        perf = subprocess.Popen(
            ["perf", "record", "-q", "-a", "-k", "CLOCK_MONOTONIC", "-e", "sched:sched_switch",
             "-e", "sched:sched_wakeup", "-g", "-o", out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # the server's wake-ups again, with user stacks unwound from a copy of
        # the stack (DWARF): which call of which thread let the main thread go
        deep = subprocess.Popen(
            ["perf", "record", "-q", "-p", str(pid), "-k", "CLOCK_MONOTONIC", "-e",
             "sched:sched_wakeup", "--call-graph", "dwarf,16384", "-o", out + ".wake"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if stacks else None
        await asyncio.sleep(1.0)
        task = asyncio.create_task(backups()) if not alone else None
        await asyncio.sleep(0.3)
        for i in range(inserts):
            r0 = await asleep(pid)
            c0, s0 = main_clock(pid), sum(steal_ms())
            t0 = time.perf_counter()  # CLOCK_MONOTONIC, as perf's -k
            await sql(wr, url, f"INSERT INTO big.events (n, note) VALUES ({10**6 + i}, 'e')")
            times.append((t0, time.perf_counter()))
            r1 = await asleep(pid)
            c1, s1 = main_clock(pid), sum(steal_ms())
            clocks.append((r0, r1, c1[0] - c0[0], c1[1] - c0[1], s1 - s0))
        for proc in (perf, deep):
            if proc is not None:
                proc.send_signal(2)
                proc.wait(120)
        stop.set()
        if task is not None:
            await task
    return {"times": times, "backups": took, "clocks": clocks}


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def _reason(state: str, frames: list[str]) -> str:
    s = " ".join(frames)
    if state.startswith("R"):
        return "preempted"
    for key, name in (("futex", "futex"), ("ep_poll", "epoll"), ("do_epoll", "epoll")):
        if key in s:
            return name
    if any(k in s for k in ("ext4", "jbd2", "blk", "io_schedule", "folio_wait", "filemap")):
        return "file system / block I/O"
    return "other"


def analyse(perf_data: Path, run: dict[str, Any], over: float) -> None:
    pid, copiers, client = run["pid"], set(run["copiers"]), run["client"]
    text = subprocess.run(["perf", "script", "-i", str(perf_data), "-F",
                           "comm,tid,pid,cpu,time,event,trace,ip,sym"],
                          capture_output=True, text=True, check=False).stdout
    events = []
    for block in text.split("\n\n"):
        lines = block.strip("\n").splitlines()
        m = _HEAD.match(lines[0]) if lines else None
        if m is None:
            continue
        frames = [ln.split()[1] for ln in lines[1:] if len(ln.split()) > 1]
        events.append((float(m.group(5)) * 1000, m.group(6), int(m.group(4)), int(m.group(2)),
                       int(m.group(3)), dict(_FIELDS.findall(m.group(7))), frames))
    events.sort(key=lambda e: e[0])
    server = {e[4] for e in events if e[3] == pid}
    tgid = {e[4]: e[3] for e in events}
    prio: dict[int, int] = {}
    for e in events:
        if e[1] == "sched:sched_switch":
            prio[int(e[5]["prev_pid"])] = int(e[5]["prev_prio"])
            prio[int(e[5]["next_pid"])] = int(e[5]["next_prio"])

    def cls(tid: int) -> str:
        if tid == pid:
            return "main"
        if tid in server:
            return "server-bg" if prio.get(tid, 120) > 120 else "server"
        if tgid.get(tid) in copiers:
            return "copier"
        if tgid.get(tid) == client:
            return "client"
        return "idle" if tid == 0 else "other"

    main: list[tuple[float, float, str]] = []  # (start, end, state)
    cpus: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
    since: dict[int, tuple[float, int]] = {}
    state: tuple[float, str] | None = None
    # every server thread's states, and each wake-up of the main thread from a
    # futex: (when, waker tid, the waker's stack)
    threads: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    tstate: dict[int, tuple[float, str]] = {}
    wakes: list[tuple[float, int, list[str]]] = []
    for t, kind, cpu, _, tid, f, frames in events:
        if kind == "sched:sched_switch":
            prev, nxt = int(f["prev_pid"]), int(f["next_pid"])
            for who, st_ in ((prev, None), (nxt, "on a CPU")):
                if who in server:
                    if who in tstate:
                        threads[who].append((tstate[who][0], t, tstate[who][1]))
                    if st_ is None:
                        why = _reason(f["prev_state"], frames)
                        st_ = "runnable" if why == "preempted" else "asleep: " + why
                    tstate[who] = (t, st_)
        elif kind == "sched:sched_wakeup" and int(f.get("pid", -1)) in server:
            woken = int(f["pid"])
            if woken in tstate and tstate[woken][1].startswith("asleep"):
                threads[woken].append((tstate[woken][0], t, tstate[woken][1]))
                tstate[woken] = (t, "runnable")
            if woken == pid and state and state[1] == "sleep futex":
                wakes.append((t, tid, frames))
        if kind == "sched:sched_switch":
            if cpu in since:
                cpus[cpu].append((since[cpu][0], t, since[cpu][1]))
            since[cpu] = (t, nxt)
            if prev == pid:
                if state:
                    main.append((state[0], t, state[1]))
                why = _reason(f["prev_state"], frames)
                state = (t, "runnable" if why == "preempted" else "sleep " + why)
            if nxt == pid:
                if state:
                    main.append((state[0], t, state[1]))
                state = (t, "on a CPU")
        elif kind == "sched:sched_wakeup" and int(f.get("pid", -1)) == pid and state \
                and state[1].startswith("sleep"):
            main.append((state[0], t, f"{state[1]}, woken by {cls(tid)}"))
            state = (t, "runnable")
    starts = {c: [iv[0] for iv in ivs] for c, ivs in cpus.items()}
    mstarts = [iv[0] for iv in main]

    def span(ivs: list[Any], keys: list[float], lo: float, hi: float) -> Any:
        i = max(0, bisect.bisect_right(keys, lo) - 1)
        while i < len(ivs) and ivs[i][0] < hi:
            yield ivs[i]
            i += 1

    def split(a: float, b: float) -> tuple[dict[str, float], dict[str, float]]:
        parts: dict[str, float] = defaultdict(float)
        ran: dict[str, float] = defaultdict(float)
        for t0, t1, st in span(main, mstarts, a, b):
            lo, hi = max(a, t0), min(b, t1)
            if hi <= lo:
                continue
            parts[st] += hi - lo
            if st == "runnable":
                for c, ivs in cpus.items():
                    for c0, c1, tid in span(ivs, starts[c], lo, hi):
                        if min(hi, c1) > max(lo, c0):
                            ran[cls(tid)] += min(hi, c1) - max(lo, c0)
        return parts, ran

    total: dict[str, float] = defaultdict(float)
    total_ran: dict[str, float] = defaultdict(float)
    slow = []
    lost_all = steal_all = 0.0
    for (a, b), (r0, r1, cpu, queued, steal) in zip(run["times"], run["clocks"], strict=True):
        parts, ran = split(a * 1000, b * 1000)
        for k, v in parts.items():
            total[k] += v
        for k, v in ran.items():
            total_ran[k] += v
        # perf's "on a CPU" and "runnable" are wall-clock time; the thread's own
        # clock (read with the thread off its CPU, so exact) leaves out what the
        # hypervisor took while the thread was on a CPU
        whole, _ = split(r0 * 1000, r1 * 1000)
        lost = whole.get("on a CPU", 0.0) + whole.get("runnable", 0.0) - cpu - queued
        lost_all += lost
        steal_all += steal
        if (b - a) * 1000 > over:
            slow.append(((b - a) * 1000, parts, ran, (cpu, queued, lost, steal)))
    n = len(run["times"])
    ms = sorted((b - a) * 1000 for a, b in run["times"])
    what = "with no BACKUP" if run.get("alone") else f"during {len(run['backups'])} BACKUP(s)"
    print(f"{n} INSERTs {what}: p50 {ms[n // 2]:.1f} ms, "
          f"max {ms[-1]:.1f} ms, {sum(x > 15 for x in ms)} over 15 ms; load {run['load']}")
    print("\nthe main thread, µs per INSERT:")
    for k, v in sorted(total.items(), key=lambda x: -x[1]):
        print(f"  {v / n * 1000:7.0f}  {k}")
    print("while it was runnable, the CPUs ran (µs per INSERT, both CPUs):")
    for k, v in sorted(total_ran.items(), key=lambda x: -x[1]):
        print(f"  {v / n * 1000:7.0f}  {k}")
    print(f"perf's on a CPU + runnable, less the thread's own CPU + run-queue time (time "
          f"the hypervisor took): {lost_all / n * 1000:.0f} µs per INSERT, {lost_all:.0f} ms in "
          f"all; /proc/stat steal of both CPUs during the INSERTs: {steal_all:.0f} ms")
    long_waits = [(a, b) for a, b, st_ in main if "futex" in st_ and b - a > 5]
    deep: dict[float, list[str]] = {}
    wake_file = Path(str(perf_data) + ".wake")
    if wake_file.exists():
        text = subprocess.run(["perf", "script", "--no-inline", "-i", str(wake_file), "-F",
                               "comm,tid,pid,cpu,time,event,trace,ip,sym,dso"],
                              capture_output=True, text=True, check=False).stdout
        for block in text.split("\n\n"):
            lines = block.strip("\n").splitlines()
            m = _HEAD.match(lines[0]) if lines else None
            if m is None or int(dict(_FIELDS.findall(m.group(7))).get("pid", -1)) != pid:
                continue
            frames = [" ".join(ln.split()[1:]) for ln in lines[1:] if len(ln.split()) > 1]
            deep[round(float(m.group(5)) * 1000, 3)] = [
                f for f in frames if "[kernel.kallsyms]" not in f and "[unknown]" not in f]
    if long_waits:
        print("\nthe main thread's futex sleeps over 5 ms: what the thread that woke it "
              "did meanwhile (ms), and its stack at the wake-up:")
        wake_at = {round(w[0], 6): w for w in wakes}
        for a, b in long_waits:
            w = wake_at.get(round(b, 6))
            if w is None:
                continue
            did: dict[str, float] = defaultdict(float)
            for t0, t1, st_ in threads.get(w[1], []):
                if min(b, t1) > max(a, t0):
                    did[st_] += min(b, t1) - max(a, t0)
            print(f"  {b - a:5.1f} ms from {a / 1000:.3f} s, woken by {w[1]} ({cls(w[1])}, nice "
                  f"{prio.get(w[1], 120) - 120}): " + ", ".join(
                      f"{k} {v:.1f}" for k, v in sorted(did.items(), key=lambda x: -x[1])))
            user = deep.get(round(b, 3))
            if user:
                print("      " + "\n      ".join(user[:24]))
            else:
                print("      " + " < ".join(fr for fr in w[2][:14] if fr != "[unknown]"))
    print(f"\nINSERTs over {over:g} ms (perf's view; then the thread's own clock: CPU, "
          f"runnable, perf's on-CPU + runnable not in them; steal of both CPUs meanwhile):")
    for wall, parts, ran, (cpu, queued, lost, steal) in slow:
        print(f"  {wall:5.1f} ms: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                             sorted(parts.items(), key=lambda x: -x[1]))
              + ("; runnable while the CPUs ran " + ", ".join(
                  f"{k} {v:.1f}" for k, v in sorted(ran.items(), key=lambda x: -x[1]))
                 if ran else "")
              + f" | own clock: CPU {cpu:.1f}, runnable {queued:.1f}, not counted {lost:.1f};"
              f" steal {steal:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the 1 GiB namespace, built here once")
    ap.add_argument("--mb", type=int, default=1024)
    ap.add_argument("--inserts", type=int, default=2000)
    ap.add_argument("--over", type=float, default=10.0, help="list INSERTs slower than this")
    ap.add_argument("--server-root", default=str(ROOT), help="checkout the server runs from")
    ap.add_argument("--config", help="a cairn.toml for the server")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--alone", action="store_true", help="no BACKUP beside the INSERTs")
    ap.add_argument("--stacks", action="store_true",
                    help="also record the server's wake-ups with DWARF user stacks, to name "
                         "the call that held what the main thread waited for")
    args = ap.parse_args()
    if not (Path(args.data) / "catalog").exists():
        build(Path(args.data), {"big": args.mb}, 100)
    tmp = Path(tempfile.mkdtemp(prefix="cairn-stall-sched-", dir=args.dir))
    try:
        shutil.copytree(args.data, tmp / "data")
        srv = Server(tmp / "data", tmp / "server.log",
                     Path(args.config) if args.config else None, root=Path(args.server_root))
        try:
            load0 = os.getloadavg()[0]
            run = asyncio.run(loop(srv.url, str(tmp / "perf.data"), args.inserts, srv.pid,
                                   args.alone, args.stacks))
            run.update(pid=srv.pid, copiers=children(srv.pid), client=os.getpid(),
                       load=(round(load0, 2), round(os.getloadavg()[0], 2)), alone=args.alone)
        finally:
            srv.stop()
        print(f"server from {args.server_root}")
        analyse(tmp / "perf.data", run, args.over)
        (Path(args.dir) / "stall_sched_last.json").write_text(json.dumps(run))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
