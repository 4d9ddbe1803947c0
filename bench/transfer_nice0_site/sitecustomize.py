"""Loaded into a bench's `cairn serve` with `CAIRN_BENCH_SITE=bench/transfer_nice0_site`
(bench/common.py puts it on the server's PYTHONPATH), for a same-code A/B of
issue 15's INSERTs during a BACKUP: the transfer threads (`storage/inflight.py`'s
pool, which a lowered job thread starts, so they inherit its nice 10) put
back at nice 0 as they start; the copier processes stay at SCHED_IDLE. Needs
root (raising a nice value). No code of the server changes.

Why: the event loop's longest GIL waits during a backup were behind transfer
threads that had taken the GIL back (after `send` to their copier, `poll` in
`give_way`, a lock) and were then preempted at nice 10 before their next
blocking call gave it up (docs/performance.md, "The INSERT stalls' blocked
time")."""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent import futures
from typing import Any

from storage import inflight


def _normal_priority() -> None:
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 0)


class _Pool(futures.ThreadPoolExecutor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initializer", _normal_priority)
        super().__init__(*args, **kwargs)


inflight.ThreadPoolExecutor = _Pool  # type: ignore[misc]
