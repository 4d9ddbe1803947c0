"""How long an archiver's cycle holds the GIL at a stretch (bench_archive --only gil).

In one process, with nothing else running in it: a change log on a real
RocksDB catalog holds `changes` one-row INSERT statements (the bench's
table), and the cycle's steps run as the archiver runs them (read the log,
build the blocks and encode the segment, write it durably, commit the catalog
batch and trim the log), again and again. Beside them a probe thread sleeps
0.5 ms at a time: each wake-up needs the GIL back, so how late it wakes is how
long the cycle's thread held the GIL before handing it over (a writer's thread
waits the same), plus the OS's own wake-up delay (the probe alone, with the
cycle's thread asleep, says how much). The stretches are printed per step,
with Python's switch interval (the longest a thread keeps the GIL while
another waits, unless a C call holds it longer) at its default and at 1 ms,
and with the cycle paced as the server paces it (storage/archive/steps.py:
a 1 ms nap after each 1 ms of running) at the default."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.common import pct
from catalog import Catalog
from storage import allocator
from storage.archive import segment
from storage.archive.changes import ROWS, ChangeLog
from storage.archive.steps import pacing
from storage.backup import Repository, resolve_target
from storage.backup.atomic import write_atomic
from storage.buffer import encode

STEPS = ("idle", "read", "encode", "write", "commit", "log")


class Probe:
    """A thread that sleeps `nap` seconds at a time and records how late each
    wake-up was, with the step the cycle was in when it woke."""

    def __init__(self, nap: float = 0.0005) -> None:
        self.nap = nap
        self.step = "idle"
        self.late: dict[str, list[float]] = {s: [] for s in STEPS}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            time.sleep(self.nap)
            self.late.setdefault(self.step, []).append((time.perf_counter() - t0 - self.nap) * 1000)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _changes(log: ChangeLog, catalog: Catalog, n: int, base: int) -> None:
    schema = pa.schema([pa.field("_seq", pa.int64(), nullable=False), pa.field("_ow", pa.bool_()),
                        pa.field("id", pa.int64()), pa.field("v", pa.int64()),
                        pa.field("payload", pa.binary())])
    for i in range(base, base + n):
        data = encode(pa.table([[i], [False], [i], [i], pa.array([None], pa.binary())],
                               schema=schema), 1, time.time(), None)
        batch = catalog.batch()
        with log.committing("app") as rec:
            assert rec is not None
            rec.add(batch, ROWS, "t", data)
            batch.commit()


@contextlib.contextmanager
def logged_changes(n: int, prefix: str) -> Iterator[tuple[ChangeLog, int, int]]:
    """A catalog in a fresh temporary directory whose change log holds `n`
    one-row changes of namespace app: (the log, its mark's lsn and time);
    removed afterwards (archive_read.py, archive_cycle_cpu.py)."""
    allocator.fix_malloc_thresholds()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    catalog = Catalog(work / "catalog")
    try:
        log = ChangeLog(catalog)
        log.activate("app")
        _changes(log, catalog, n, 0)
        hi, through = log.mark("app")
        yield log, hi, through
    finally:
        catalog.close()
        shutil.rmtree(work, ignore_errors=True)


def cycles(changes: int, rounds: int, switch: float, paced: bool = False) -> dict[str, Any]:
    """`rounds` cycles of `changes` changes each at switch interval `switch`
    (`paced`: inside steps.pacing(), as the server runs them); the probe's
    lateness (ms) per step, and the cycle's CPU and wall time per step."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(switch)
    work = Path(tempfile.mkdtemp(prefix="cairn-gil-"))
    catalog = Catalog(work / "catalog")
    log = ChangeLog(catalog)
    log.activate("app")
    repo = Repository(resolve_target(str(work / "target"), [str(work)], {}))
    repo.init()
    shipped_lsn, shipped_us = 0, 0
    cpu = {s: 0.0 for s in STEPS[1:]}
    wall = {s: 0.0 for s in STEPS[1:]}
    try:
        with Probe() as probe:
            time.sleep(0.2)  # the probe alone: the OS's wake-up delay
            for r in range(rounds):
                probe.step = "log"  # the writers' part (not shown)
                _changes(log, catalog, changes, r * changes)
                probe.step = "idle"
                time.sleep(0.05)
                hi, through = log.mark("app")

                def run(step: str, fn: Any) -> Any:
                    probe.step = step
                    t0, w0 = time.thread_time(), time.perf_counter()
                    with pacing() if paced else contextlib.nullcontext():
                        out = fn()
                    cpu[step] += time.thread_time() - t0
                    wall[step] += time.perf_counter() - w0
                    return out

                got = run("read", lambda: log.read("app", shipped_lsn, hi))  # noqa: B023
                name = segment.SegmentName(shipped_lsn, got[-1].lsn, shipped_us, through)
                data = run("encode", lambda: segment.encode(  # noqa: B023
                    "app", "ar-00000000000000000000", name, got, True, None))  # noqa: B023
                path = f"{repo.target.base}/archives/app/{name.file}"
                run("write", lambda: write_atomic(repo.target, path, data, True))  # noqa: B023

                def commit() -> None:
                    batch = catalog.batch()
                    log.trim("app", name.last_lsn, batch)  # noqa: B023
                    batch.commit()
                    log.shipped("app", name.last_lsn)  # noqa: B023

                run("commit", commit)
                probe.step = "idle"
                shipped_lsn, shipped_us = name.last_lsn, name.through_us
                time.sleep(0.05)
    finally:
        sys.setswitchinterval(old)
        catalog.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"late": probe.late, "cpu": {k: 1000 * v / rounds for k, v in cpu.items()},
            "wall": {k: 1000 * v / rounds for k, v in wall.items()}}


def head_scan(trimmed: int = 60_000) -> dict[str, float]:
    """After `trimmed` changes were logged and trimmed, 300 per cycle (RocksDB
    keeps them until the family's 64 MB memtable is flushed, ~80,000 such
    changes; 60,000 is ~3 minutes of 16 writers, or a 24-phase overhead run's
    last minutes): how long finding the oldest change left holds the GIL, from
    the log's head (what each cycle did before) and from past the trimmed
    range (now). The probe's longest wait during each call, ms (best of 5)."""
    work = Path(tempfile.mkdtemp(prefix="cairn-gil-"))
    catalog = Catalog(work / "catalog")
    log = ChangeLog(catalog)
    log.activate("app")
    out: dict[str, float] = {}
    try:
        for i in range(0, trimmed, 300):
            _changes(log, catalog, 300, i)
            hi, _ = log.mark("app")
            batch = catalog.batch()
            log.trim("app", hi, batch)
            batch.commit()
        with Probe() as probe:
            for label, after in (("head", 0), ("past_trim", hi)):
                waits = []
                for _ in range(5):
                    time.sleep(0.02)
                    probe.step = label
                    t0 = time.perf_counter()
                    log._first_entry("app", after)
                    waits.append((time.perf_counter() - t0) * 1000)
                    time.sleep(0.005)
                    probe.step = "idle"
                out[label] = min(waits)
                out[label + "_probe"] = max(probe.late.get(label) or [0.0])
    finally:
        catalog.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


def show(r: dict[str, Any], switch: float, paced: bool = False) -> str:
    lines = [f"  switch interval {switch * 1000:.1f} ms, {'paced' if paced else 'not paced'}: "
             "a probe thread's wake-up lateness (how long it waited for the GIL), ms: "
             "p50 / p99 / max (wake-ups); the cycle's CPU and wall ms per cycle"]
    for step in STEPS[:-1]:
        late = r["late"][step]
        if not late:
            continue
        cpu = r["cpu"].get(step)
        lines.append(f"    {step:7s} {pct(late, 50):.2f} / {pct(late, 99):.2f} / "
                     f"{max(late):.2f} ({len(late)})"
                     + (f"; CPU {cpu:.2f} ms, wall {r['wall'][step]:.2f} ms"
                        if cpu is not None else ""))
    return "\n".join(lines)
