"""Ablations for bench/load.py (`--ablate`): parts of a BACKUP taken out of a
real `cairn serve`, one at a time, to see which of them the p99 beside a
BACKUP follows (issue 15; docs/performance.md). Never correct: a BACKUP with
`buffer` or `store` ablated is not whole, and load.py's final restore check
says so.

On only in the server process (`python -m server.cli serve`), and only for
the names in CAIRN_ABLATE (comma-separated):

- `buffer`: the snapshot takes no buffered rows (no conversion into Arrow, no
  spill, no Parquet export in the job process);
- `keep_last`: keep_last drops nothing (no listing, drop or prune calls);
- `store`: the job process's `write_backup` is a 0.1 s sleep, no CPU and no
  I/O (`ablation_store.py`); implies `keep_last` (the target stays empty);
- `purge`: no allocator purge after a job (`server/jobs.py`);
- `pin`: the server's main thread on CPU 0 alone, every Python thread it
  starts (and the job processes they start) on CPU 1; load.py pins its own
  client to CPU 1 too;
- `fsync`: the job processes' fsyncs do nothing (they alone: the server's
  flushes still sync)."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import threading
import types
from typing import Any

_CMD = open("/proc/self/cmdline", "rb").read().split(b"\0")  # noqa: SIM115 - read once
ABLATE = {a for a in os.environ.get("CAIRN_ABLATE", "").split(",") if a}
KNOWN = {"buffer", "keep_last", "store", "purge", "pin", "fsync"}


def _patch(module: Any, name: str) -> None:
    if name == "storage.snapshot" and "buffer" in ABLATE:
        module._buffer = lambda captured: None
    if name == "server.backups" and ABLATE & {"keep_last", "store"}:
        module.drop_beyond = lambda *args, **kwargs: []
    if name == "server.backup_run" and "store" in ABLATE:
        import ablation_store
        module.write_backup = ablation_store.write_backup
    if name == "server.jobs" and "purge" in ABLATE:
        module.allocator = types.SimpleNamespace(purge=lambda: True)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in self.names:
            return None
        self.names.discard(name)
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            if self.names:
                sys.meta_path.insert(0, self)
        assert spec is not None and spec.loader is not None
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            _patch(module, name)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _pin() -> None:
    os.sched_setaffinity(0, {0})
    start = threading.Thread.run

    def run(self: threading.Thread) -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {1})
        start(self)

    threading.Thread.run = run  # type: ignore[method-assign]


if "fsync" in ABLATE and b"storage.jobchild" in _CMD:
    os.fsync = lambda fd: None

if ABLATE and b"server.cli" in _CMD and b"serve" in _CMD:
    unknown = ABLATE - KNOWN
    if unknown:
        raise SystemExit(f"CAIRN_ABLATE: unknown {sorted(unknown)}; known: {sorted(KNOWN)}")
    sys.meta_path.insert(0, _Finder({"storage.snapshot", "server.backups",
                                     "server.backup_run", "server.jobs"}))
    if "pin" in ABLATE:
        _pin()
