"""How long the hypervisor takes a virtual CPU away ("steal"), stretch by
stretch (issue 15's INSERT stalls).

One spinning thread per CPU (pinned; at normal priority, or with `--idle` at
SCHED_IDLE, which takes no CPU from anything else but then sees only the
steal of moments when nothing else wants that CPU) reads CLOCK_MONOTONIC in
a loop. When two reads are more than
`--gap` ms apart, the gap is classed by what the kernel says happened to the
thread meanwhile: a context switch (getrusage's voluntary + involuntary
switches moved: another thread ran, nothing to do with steal) or none. With
no switch, the thread's own CPU clock (CLOCK_THREAD_CPUTIME_ID, which this
kernel keeps without steal time: CONFIG_PARAVIRT_TIME_ACCOUNTING) says the
rest: the part of the gap it did not count is time the hypervisor ran
something else on that virtual CPU, the part it counted is an interrupt or
the kernel working on the thread's behalf.

Prints, per CPU, the stolen stretches by length and the longest, and the
steal /proc/stat counted meanwhile. A single-row INSERT whose thread is on a
virtual CPU while it is stolen takes that much longer; from inside the guest
its thread looks neither on a CPU nor waiting for one.

    python bench/steal_probe.py [--seconds 30] [--gap 1] [--idle]
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from pathlib import Path

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
BOUNDS = (1, 2, 5, 10, 15, 20, 50)


def steal_ms() -> list[float]:
    """Each CPU's steal time so far, ms (/proc/stat counts clock ticks)."""
    return [int(line.split()[8]) * _TICK_MS
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("cpu") and line[3:4].isdigit()]


def spin(cpu: int, seconds: float, gap_ns: int, idle: bool,
         out: dict[int, list[tuple[float, float]]]) -> None:
    """Record (gap ms, of it not on this thread's clock ms) of every gap with no
    context switch on `cpu`."""
    os.sched_setaffinity(0, {cpu})
    if idle:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    found: list[tuple[float, float]] = []
    mono, cpu_ns, usage = time.monotonic_ns, time.thread_time_ns, resource.getrusage
    who = resource.RUSAGE_THREAD
    end = mono() + int(seconds * 1e9)
    last, own = mono(), cpu_ns()
    ru = usage(who)
    switches = ru.ru_nvcsw + ru.ru_nivcsw
    while last < end:
        now, own_now = mono(), cpu_ns()
        if now - last > gap_ns:
            ru = usage(who)
            sw = ru.ru_nvcsw + ru.ru_nivcsw
            if sw == switches:
                wall = (now - last) / 1e6
                found.append((wall, max(0.0, wall - (own_now - own) / 1e6)))
            switches = sw
            now, own_now = mono(), cpu_ns()
        last, own = now, own_now
    out[cpu] = found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--gap", type=float, default=1.0, help="report gaps longer than this, ms")
    ap.add_argument("--idle", action="store_true", help="spin at SCHED_IDLE")
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    out: dict[int, list[tuple[float, float]]] = {}
    load0, steal0 = os.getloadavg()[0], steal_ms()
    gap_ns = int(args.gap * 1e6)
    threads = [threading.Thread(target=spin, args=(c, args.seconds, gap_ns, args.idle, out))
               for c in cpus]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    steal1 = steal_ms()
    print(f"steal_probe: {args.seconds:g} s, {'SCHED_IDLE' if args.idle else 'nice 0'}, "
          f"gaps > {args.gap:g} ms with no context switch, "
          f"load {load0:.2f} / {os.getloadavg()[0]:.2f}")
    print("\n| CPU | stolen stretches by length (ms): " + " ".join(
        f"> {b}" for b in BOUNDS) + " | longest ms | stolen ms in all | /proc/stat steal ms "
          "| gaps the thread's clock counted (interrupts), ms |")
    print("|---|---|---:|---:|---:|---:|")
    for c in cpus:
        gaps = out.get(c, [])
        stolen = [s for _, s in gaps if s >= args.gap]
        counts = " ".join(str(sum(1 for s in stolen if s > b)) for b in BOUNDS)
        irq = sum(w - s for w, s in gaps)
        print(f"| {c} | {counts} | {max(stolen, default=0):.1f} | {sum(stolen):.0f} "
              f"| {steal1[c] - steal0[c]:.0f} | {irq:.1f} |")


if __name__ == "__main__":
    main()
