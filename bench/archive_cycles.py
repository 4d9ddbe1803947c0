"""What bench_archive's overhead run says about the archiver's cycles, and its verdict.

- `steps`: the archiver's cost per cycle, step by step (read, blocks and its
  split and arrow parts, encode, write, commit), wall and CPU, from the
  server's /metrics (storage/archive/steps.py).
- `windows` and `against_cycles`: when each cycle ran, from the segments it
  wrote (a segment's name holds the mark the cycle started with; its file's
  ctime is when it was renamed into place, after its fsync), and which writes
  were in flight meanwhile. If the cycles make the tail, the writes in flight
  during a cycle are the slow ones; the same windows moved by half an interval
  (a placebo, the same share of the time) say what chance alone gives.
- `verdict`: both ways of reading p99 against the aim, with a bootstrap over
  the phases for the pooled one (how sure the figure is).
"""

from __future__ import annotations

import bisect
import random
import statistics
from pathlib import Path
from typing import Any

from bench.common import pct, session
from storage.archive.segment import parse_name

Write = tuple[float, float]  # (sent: unix seconds, latency ms)
STEPS = ("read", "blocks", "blocks_split", "blocks_arrow", "encode", "write", "commit", "ship")


async def steps(url: str) -> dict[str, tuple[float, int]]:
    """(total seconds, count) so far of every archive_* phase in /metrics (by
    step name) and of the garbage collector's passes ('gc0' .. 'gc2')."""
    async with session(1) as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        for part, slot in (("_sum", 0), ("_count", 1)):
            for head, tag in ((f'cairn_write_phase_seconds{part}{{phase="archive_', ""),
                              (f'cairn_gc_pause_seconds{part}{{generation="', "gc")):
                if line.startswith(head):
                    name = tag + line[len(head):line.index('"', len(head))]
                    out.setdefault(name, [0.0, 0.0])[slot] = float(line.split()[-1])
    return {k: (v[0], int(v[1])) for k, v in out.items()}


def step_delta(before: dict[str, tuple[float, int]],
               after: dict[str, tuple[float, int]]) -> dict[str, tuple[float, int]]:
    return {k: (v[0] - before.get(k, (0.0, 0))[0], v[1] - before.get(k, (0.0, 0))[1])
            for k, v in after.items()}


def show_steps(per_phase: list[dict[str, tuple[float, int]]]) -> str:
    """Mean wall / CPU ms per cycle of each step, over all on-phases."""
    total: dict[str, list[float]] = {}
    for d in per_phase:
        for k, (s, n) in d.items():
            acc = total.setdefault(k, [0.0, 0.0])
            acc[0] += s
            acc[1] += n
    parts = []
    for name in STEPS:
        wall, cpu = total.get(name), total.get(f"{name}_cpu")
        if wall and wall[1]:
            parts.append(f"{name} {1000 * wall[0] / wall[1]:.2f} / "
                         f"{1000 * (cpu[0] if cpu else 0) / wall[1]:.2f}")
    helper = total.get("helper_cpu")
    if helper and helper[1]:  # the child process's CPU: not in the server's own figures
        parts.append(f"helper process's CPU (outside the server) "
                     f"{1000 * helper[0] / helper[1]:.2f} ms per body ({int(helper[1])} bodies)")
    cycles = int(total.get("ship", [0, 0])[1])
    return (f"  archiver cycle, mean wall / CPU ms per cycle ({cycles} cycles; 'encode' "
            f"holds 'blocks', which holds 'blocks_split' and 'blocks_arrow'; 'ship' is the "
            f"whole cycle): " + "; ".join(parts))


def show_gc(per: dict[str, list[dict[str, tuple[float, int]]]]) -> str:
    """The collector's passes per phase, medians of each setting."""
    parts = []
    for gen in ("gc0", "gc1", "gc2"):
        got = []
        for k in ("off", "on"):
            runs = [d.get(gen, (0.0, 0)) for d in per[k]] or [(0.0, 0)]
            got.append(f"{statistics.median(n for _, n in runs):.0f} passes "
                       f"{1000 * statistics.median(t for t, _ in runs):.1f} ms")
        parts.append(f"gen {gen[-1]} {got[0]} / {got[1]}")
    return "  garbage collector per phase, medians off / on: " + "; ".join(parts)


def windows(target: Path) -> list[tuple[float, float]]:
    """(start, end) unix seconds of every cycle that wrote a segment into `target`."""
    out = []
    for seg in sorted((target / "archives").glob("*/*/*.seg")):
        name = parse_name(seg.name)
        if name is None or name.empty:
            continue
        out.append((name.through_us / 1e6, seg.stat().st_ctime))
    return sorted(out)


def _overlaps(w: Write, spans: list[tuple[float, float]], starts: list[float]) -> bool:
    sent, end = w[0], w[0] + w[1] / 1000
    i = bisect.bisect_left(starts, end)  # spans starting before the write ended
    return any(spans[j][1] > sent for j in range(max(0, i - 3), i))


def against_cycles(writes: list[Write], spans: list[tuple[float, float]],
                   tail_ms: float, shift: float = 0.5) -> dict[str, float]:
    """Writes in flight during a cycle against the rest, and the same for the
    windows moved by `shift` seconds (a placebo). `tail_ms`: what counts as a
    tail write (the on-phases' pooled p99: where are their slowest 1%?)."""
    out: dict[str, float] = {}
    for label, moved in (("cycle", spans), ("placebo", [(a + shift, b + shift)
                                                        for a, b in spans])):
        starts = [a for a, _ in moved]
        inside = [w for w in writes if _overlaps(w, moved, starts)]
        outside = [w for w in writes if not _overlaps(w, moved, starts)]
        tail = [w for w in writes if w[1] > tail_ms]
        tail_in = sum(1 for w in tail if _overlaps(w, moved, starts))
        out[f"{label}_share"] = 100 * len(inside) / max(1, len(writes))
        out[f"{label}_p99_in"] = pct([w[1] for w in inside], 99)
        out[f"{label}_p99_out"] = pct([w[1] for w in outside], 99)
        out[f"{label}_tail_share"] = 100 * tail_in / max(1, len(tail))
    out["tail_writes"] = sum(1 for w in writes if w[1] > tail_ms)
    out["cycle_ms"] = 1000 * statistics.median(b - a for a, b in spans) if spans else 0.0
    return out


def show_cycles(r: dict[str, float]) -> str:
    return (f"  writes in flight during a cycle (median cycle {r['cycle_ms']:.1f} ms, start to "
            f"segment in place): {r['cycle_share']:.1f}% of the on-phase writes, p99 "
            f"{r['cycle_p99_in']:.1f} ms against {r['cycle_p99_out']:.1f} ms for the rest; "
            f"{r['cycle_tail_share']:.1f}% of the {r['tail_writes']:.0f} writes slower than "
            f"that p99 were in flight during one\n"
            f"  placebo (the same windows 0.5 s later): {r['placebo_share']:.1f}% of the "
            f"writes, p99 {r['placebo_p99_in']:.1f} against {r['placebo_p99_out']:.1f} ms; "
            f"{r['placebo_tail_share']:.1f}% of the slow writes")


def bootstrap(lat: dict[str, list[list[float]]], rounds: int = 400,
              seed: int = 7) -> tuple[float, float]:
    """5th and 95th percentile of the pooled-p99 ratio (on / off - 1, %) over
    the phases drawn with replacement (each setting's phases on their own)."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(rounds):
        p = {}
        for k in ("off", "on"):
            phases = lat[k]
            pooled = [x for _ in phases for x in phases[rng.randrange(len(phases))]]
            p[k] = pct(pooled, 99)
        ratios.append(100 * (p["on"] / p["off"] - 1))
    ratios.sort()
    return ratios[int(0.05 * len(ratios))], ratios[int(0.95 * len(ratios)) - 1]


def verdict(r: dict[str, Any], aim: float = 10.0) -> str:
    """The aim read three ways; met only if every one is."""
    def word(x: float) -> str:
        return "met" if x <= aim else "MISSED"
    lo, hi = r["p99_pooled_ci"]
    checks = [("p99, median of the phases' p99", r["p99_worse_pct"]),
              ("p99 of all writes of each setting (pooled)", r["p99_pooled_worse_pct"]),
              ("throughput, median of the phases", r["tput_worse_pct"])]
    lines = [f"  aim <= {aim:.0f}% worse with archiving on:"]
    for what, x in checks:
        lines.append(f"    {what}: {x:+.1f}% {word(x)}")
    lines[2] += f" (bootstrap over the phases, 90%: {lo:+.1f}% to {hi:+.1f}%)"
    ok = all(x <= aim for _, x in checks)
    lines.append(f"    verdict: {'met' if ok else 'MISSED'} ({r['phases']} phases)")
    return "\n".join(lines)
