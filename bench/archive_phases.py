"""What happened in each phase of bench_archive's overhead run, beside its p99:
is a slow phase archiving's doing, or the machine's?

Per phase (`Phase`):
- the machine: CPU steal (the hypervisor gave the VM's CPUs to someone else)
  and the CPU other processes used (every busy jiffy of /proc/stat minus the
  server, its children such as the archive helper, and this bench process),
  each as a % of one CPU over the phase;
- archiving: the cycles that wrote a segment (count, longest, from the
  segments' names and ctimes: archive_cycles.windows) and the helper's CPU;
- RocksDB: the flushes and compactions of the server's catalog that ran
  during the phase (its LOG's EVENT_LOG_v1 lines), by column family and reason
  (`changes` is the change log's; tables' write buffers are `buffers`, `buf_…` before 2026-12-06);
- the garbage collector's generation-2 passes;
- the slow writes (slower than `tail_ms`, the off-phases' pooled p99): how
  many, and how many were in flight during an archiver cycle, a RocksDB flush
  or compaction, or a gen-2 pass' phase (the last only as a count).

`show` prints one line per phase and, for the phases whose p99 is above the
median of their setting by 25% or more, which of these stand out."""

from __future__ import annotations

import json
import os
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import pct

Span = tuple[float, float]
_JOB = re.compile(r"\[([^\]]+)\] \[JOB (\d+)\]")
_CLK = os.sysconf("SC_CLK_TCK")


def machine() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / _CLK, steal / _CLK


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by `root` and its living descendants (the
    server and its archive helper), children that ended counted in cutime."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents[int(entry)] = int(st[1])
    mine, total = {root}, 0.0
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                changed = True
    for pid in mine:
        st = _stat(pid)
        if st is not None:
            total += (int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])) / _CLK
    return total


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Probe:
    """Counters at a phase's start; `end` gives the phase's record."""

    server: int
    wall: float = 0.0
    busy: float = 0.0
    steal: float = 0.0
    tree: float = 0.0
    me: float = 0.0

    def start(self, now: float) -> Probe:
        self.wall = now
        self.busy, self.steal = machine()
        self.tree, self.me = tree_cpu(self.server), self_cpu()
        return self

    def end(self, now: float) -> dict[str, float]:
        busy, steal = machine()
        tree, me = tree_cpu(self.server), self_cpu()
        span = max(now - self.wall, 1e-6)
        others = (busy - self.busy) - (tree - self.tree) - (me - self.me)
        return {"steal_pct": 100 * (steal - self.steal) / span,
                "others_pct": 100 * max(others, 0.0) / span,
                "server_pct": 100 * (tree - self.tree) / span,
                "bench_pct": 100 * (me - self.me) / span}


@dataclass
class Event:
    kind: str  # flush | compaction
    cf: str
    reason: str
    start: float
    end: float


def rocksdb_events(log: Path) -> list[Event]:
    """Flushes and compactions in a RocksDB LOG (unix seconds)."""
    jobs: dict[int, dict[str, object]] = {}
    cfs: dict[int, str] = {}
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        m = _JOB.search(line)
        if m is not None:
            cfs.setdefault(int(m.group(2)), m.group(1))
        at = line.find("EVENT_LOG_v1 ")
        if at < 0:
            continue
        try:
            ev = json.loads(line[at + len("EVENT_LOG_v1 "):])
        except ValueError:
            continue
        job, what = ev.get("job"), str(ev.get("event", ""))
        if not isinstance(job, int):
            continue
        rec = jobs.setdefault(job, {})
        if "cf_name" in ev:
            rec["cf"] = ev["cf_name"]
        t = float(ev.get("time_micros", 0)) / 1e6
        if what in ("flush_started", "compaction_started"):
            rec["kind"], rec["start"] = what.split("_")[0], t
            rec["reason"] = str(ev.get("flush_reason", ev.get("compaction_reason", "")))
        elif what in ("flush_finished", "compaction_finished"):
            rec["end"] = t
    out = []
    for job, rec in jobs.items():
        if "start" in rec:
            start = float(rec["start"])  # type: ignore[arg-type]
            out.append(Event(str(rec["kind"]), str(rec.get("cf", cfs.get(job, "?"))),
                             str(rec.get("reason", "")), start,
                             float(rec.get("end", start))))  # type: ignore[arg-type]
    return sorted(out, key=lambda e: e.start)


@dataclass
class Phase:
    index: int
    setting: str
    start: float
    end: float
    p99: float
    rate: float
    machine: dict[str, float]
    cycles: list[Span] = field(default_factory=list)
    helper_ms: float = 0.0
    gc2: int = 0
    writes: list[tuple[float, float]] = field(default_factory=list)  # (sent, ms)


def _during(w: tuple[float, float], spans: list[Span]) -> bool:
    a, b = w[0], w[0] + w[1] / 1000
    return any(s < b and e > a for s, e in spans)


def summary(phases: list[Phase], events: list[Event], tail_ms: float) -> list[dict[str, object]]:
    out = []
    for ph in phases:
        evs = [e for e in events if e.start < ph.end and e.end > ph.start]
        spans = [(e.start, max(e.end, e.start + 0.001)) for e in evs]
        slow = [w for w in ph.writes if w[1] > tail_ms]
        out.append({
            "phase": ph.index + 1, "setting": ph.setting, "p99": ph.p99, "rate": ph.rate,
            **ph.machine,
            "cycles": len(ph.cycles),
            "longest_cycle_ms": 1000 * max((e - s for s, e in ph.cycles), default=0.0),
            "helper_ms": ph.helper_ms, "gc2": ph.gc2,
            "flushes": sorted(f"{e.cf}:{e.reason}" for e in evs if e.kind == "flush"),
            "compactions": sorted(e.cf for e in evs if e.kind == "compaction"),
            "slow": len(slow),
            "slow_in_cycle": sum(1 for w in slow if _during(w, ph.cycles)),
            "slow_in_rocksdb": sum(1 for w in slow if _during(w, spans)),
        })
    return out


def _short(names: list[str]) -> str:
    counts: dict[str, int] = {}
    for n in names:
        n = re.sub(r"^buf_[^:]*", "buf", n)
        counts[n] = counts.get(n, 0) + 1
    return ",".join(f"{k}x{v}" if v > 1 else k for k, v in sorted(counts.items())) or "-"


def show(rows: list[dict[str, object]], tail_ms: float, events: int = 0) -> str:
    lines = [f"  per phase (slow = slower than {tail_ms:.1f} ms, the off-phases' pooled p99; "
             f"CPU as % of one CPU over the phase; {events} RocksDB flushes and compactions "
             "in the server's LOG over the whole run):",
             "    phase setting   p99 ms  writes/s  steal%  others%  server%  cycles "
             "longest-ms  helper-ms  gc2  slow in-cycle in-rocksdb  flushes | compactions"]
    for r in rows:
        lines.append(
            f"    {r['phase']:>5} {r['setting']:<7} {r['p99']:>7.1f} {r['rate']:>9.0f} "
            f"{r['steal_pct']:>7.1f} {r['others_pct']:>8.1f} {r['server_pct']:>8.1f} "
            f"{r['cycles']:>7} {r['longest_cycle_ms']:>11.0f} {r['helper_ms']:>10.0f} "
            f"{r['gc2']:>4} {r['slow']:>5} {r['slow_in_cycle']:>8} {r['slow_in_rocksdb']:>11}  "
            f"{_short(r['flushes'])} | {_short(r['compactions'])}")  # type: ignore[arg-type]
    if len(rows) >= 4:
        p99s = [float(r["p99"]) for r in rows]  # type: ignore[arg-type]
        lines.append("  rank correlation of the phases' p99 with: " + "; ".join(
            f"{what} {spearman(p99s, [float(r[k]) for r in rows]):+.2f}"  # type: ignore[arg-type]
            for k, what in (("steal_pct", "steal"), ("others_pct", "other processes' CPU"),
                            ("server_pct", "the server's CPU"))))
    med = {s: statistics.median(float(r["p99"]) for r in rows if r["setting"] == s)  # type: ignore[arg-type]
           for s in ("off", "on") if any(r["setting"] == s for r in rows)}
    slow_rows = [r for r in rows if float(r["p99"]) >= 1.25 * med[str(r["setting"])]]  # type: ignore[arg-type]
    if not slow_rows:
        lines.append("  no phase's p99 is 25% or more above its setting's median")
        return "\n".join(lines)
    mean = {k: statistics.mean(float(r[k]) for r in rows)  # type: ignore[arg-type]
            for k in ("steal_pct", "others_pct")}
    for r in slow_rows:
        notes = []
        for k, what in (("steal_pct", "steal"), ("others_pct", "other processes' CPU")):
            if float(r[k]) > 2 * mean[k] + 2:  # type: ignore[arg-type]
                notes.append(f"{what} {float(r[k]):.1f}% (run mean {mean[k]:.1f}%)")  # type: ignore[arg-type]
        if r["slow"]:
            notes.append(f"{r['slow_in_cycle']} of its {r['slow']} slow writes in flight during "
                         f"an archiver cycle, {r['slow_in_rocksdb']} during a RocksDB "
                         "flush or compaction")
        if r["gc2"]:
            notes.append(f"{r['gc2']} gen-2 GC pass(es)")
        lines.append(f"  phase {r['phase']} ({r['setting']}, p99 {float(r['p99']):.1f} ms, "  # type: ignore[arg-type]
                     f"its setting's median {med[str(r['setting'])]:.1f}): "
                     + ("; ".join(notes) or "nothing recorded stands out"))
    return "\n".join(lines)


def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):  # ties share their mean rank
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (0 when either side is constant)."""
    ra, rb = _ranks(a), _ranks(b)
    ma, mb = statistics.mean(ra), statistics.mean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb) if va and vb else 0.0


def pooled_p99(rows: list[Phase], setting: str) -> float:
    return pct([w[1] for ph in rows if ph.setting == setting for w in ph.writes], 99)


def paired(rows: list[dict[str, object]], steal_max: float = 5.0, rounds: int = 400,
           seed: int = 7) -> str:
    """The p99 read by neighbouring phases: the order is (off on on off)
    repeated, so phases 1-2, 3-4, 5-6, ... are each an off and an on phase
    side by side, sharing whatever the machine did in those ~20 s. The median
    of the pairs' on/off p99 ratios (with a bootstrap over the pairs) is not
    moved by a slow stretch that hits both phases of a pair, which the
    pooled p99 charges to whichever setting ran in it; it is read again over
    the pairs where neither phase saw more than `steal_max`% steal. Printed
    beside the verdict, which stays the aim's three readings."""
    import random

    def ratios(keep: list[tuple[dict[str, object], dict[str, object]]]) -> list[float]:
        out = []
        for a, b in keep:
            on, off = (a, b) if a["setting"] == "on" else (b, a)
            out.append(100 * (float(on["p99"]) / max(float(off["p99"]), 1e-9) - 1))  # type: ignore[arg-type]
        return out

    def read(values: list[float]) -> str:
        if not values:
            return "no pairs"
        rng = random.Random(seed)
        meds = sorted(statistics.median(rng.choice(values) for _ in values)
                      for _ in range(rounds))
        worse = sum(1 for v in values if v > 0)
        return (f"median {statistics.median(values):+.1f}% (90% bootstrap "
                f"{meds[int(0.05 * rounds)]:+.1f}…{meds[int(0.95 * rounds) - 1]:+.1f}%), "
                f"on worse in {worse} of {len(values)} pairs")

    pairs = [(rows[i], rows[i + 1]) for i in range(0, len(rows) - 1, 2)]
    quiet = [p for p in pairs if max(float(p[0]["steal_pct"]),  # type: ignore[arg-type]
                                     float(p[1]["steal_pct"])) <= steal_max]  # type: ignore[arg-type]
    return (f"  p99 by neighbouring phases (on/off of each pair; not the verdict): all pairs "
            f"{read(ratios(pairs))}; the {len(quiet)} pairs with steal <= {steal_max:.0f}% "
            f"{read(ratios(quiet))}")
