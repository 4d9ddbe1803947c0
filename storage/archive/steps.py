"""The cost of an archiver's cycle, step by step, in /metrics.

Each step's wall time and its thread's CPU time go to the write-phase
histograms as `archive_<step>` and `archive_<step>_cpu`
(`cairn_write_phase_seconds`): read (the change log), encode (blocks,
zstd, checksums), write (the segment's file, fsyncs included), commit (the
catalog batch and the log's trim). CPU time in Python code is time the
archiver held the GIL, which the writers beside it wait for; wall time well
above CPU time is I/O or waiting for the GIL or a CPU."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from storage.timing import TIMINGS


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Time the `with` body as step `name` of an archiver's cycle."""
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        TIMINGS.phase(f"archive_{name}_cpu", time.thread_time() - cpu)
        TIMINGS.phase(f"archive_{name}", time.perf_counter() - wall)
