"""The cost of an archiver's cycle, step by step, in /metrics, and its pacing.

Each step's wall time and its thread's CPU time go to the write-phase
histograms as `archive_<step>` and `archive_<step>_cpu`
(`cairn_write_phase_seconds`): read (the change log), encode (blocks, in
it blocks_split (per change, Python) and blocks_arrow (per block, Arrow);
zstd, checksums), write (the segment's file, fsyncs included), commit (the
catalog batch and the log's trim). CPU time in Python code is time the
archiver held the GIL, which the writers beside it wait for; wall time well
above CPU time is I/O or waiting for the GIL or a CPU.

Pacing: the archiver is a thread of the server's process, and a thread that
wants the GIL waits for its holder up to Python's switch interval (5 ms), or
longer while the holder is descheduled on a busy machine. So inside a cycle
(`pacing()`), the loops over changes (every PACE_EVERY changes) and the
steps between C calls call `pace()`: once the thread has run `SLICE_S` since its last pause, it sleeps
`NAP_S`, a real sleep (`time.sleep(0)` returns before a waiting thread has
taken the GIL). A writer then waits at most about a slice for the archiver,
and the cycle's GIL time is spread over its wall time (a cycle of ~15 ms of
CPU gains ~15 naps, far inside the RPO's second). Outside `pacing()` (a
restore, VERIFY, the tests) `pace()` does nothing."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from storage.timing import TIMINGS

SLICE_S = 0.001  # the longest the archiver runs between two naps
PACE_EVERY = 16  # loops over changes call pace() once per this many (a few µs each)
NAP_S = 0.001  # each nap: long enough that a waiting writer takes the GIL

_local = threading.local()


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Time the `with` body as step `name` of an archiver's cycle."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        TIMINGS.phase(f"archive_{name}_cpu", time.thread_time() - cpu)
        TIMINGS.phase(f"archive_{name}", time.perf_counter() - wall)


@contextlib.contextmanager
def pacing(slice_s: float = SLICE_S, nap_s: float = NAP_S) -> Iterator[None]:
    """Within the `with` body, `pace()` in this thread naps `nap_s` after each
    `slice_s` of running (slice_s <= 0: never)."""
    old = getattr(_local, "pace", None)
    _local.pace = [time.perf_counter(), slice_s, nap_s, 0] if slice_s > 0 else None
    try:
        yield
    finally:
        _local.pace = old


def pace() -> None:
    """A point where the archiver may hand the GIL over (see the module's doc)."""
    state = getattr(_local, "pace", None)
    if state is None:
        return
    now = time.perf_counter()
    if now - state[0] >= state[1]:
        time.sleep(state[2])
        state[3] += 1
        state[0] = time.perf_counter()


def naps() -> int:
    """How many naps `pace()` took in this thread's current `pacing()`."""
    state = getattr(_local, "pace", None)
    return 0 if state is None else int(state[3])
