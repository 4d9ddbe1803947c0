"""Loaded into a bench's `cairn serve` with `CAIRN_BENCH_SITE=bench/rocksdb_writes_site`
(bench/common.py puts it on the server's PYTHONPATH): logs every RocksDB write
batch (`catalog.store.Batch.commit`, rocksdict's `Rdict.write`, which holds the
GIL for its whole length) that took over 0.5 ms, one line each to the file
named by `CAIRN_WRITES_LOG`: CLOCK_MONOTONIC at the end (s), ms, entries, thread
name, its nice value. No code of the server changes."""

from __future__ import annotations

import os
import threading
import time

_path = os.environ.get("CAIRN_WRITES_LOG")
if _path:
    from catalog import store

    _out = open(_path, "a", buffering=1)  # noqa: SIM115 - for the process's life
    _commit = store.Batch.commit

    def commit(self: store.Batch) -> None:
        n, t0 = self.count, time.perf_counter()
        try:
            _commit(self)
        finally:
            t1 = time.perf_counter()
            if t1 - t0 > 0.0005:
                nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
                _out.write(f"{t1:.6f} {(t1 - t0) * 1000:.2f} {n} "
                           f"{threading.current_thread().name} {nice}\n")

    store.Batch.commit = commit  # type: ignore[method-assign]
