"""A GIL probe in a `cairn serve` started by bench/job_gil.py (this directory
first on its PYTHONPATH, CAIRN_GIL_PROBE naming the output file).

A thread sleeps 0.5 ms at a time; each wake-up needs the GIL back, so how late
it wakes is how long other threads kept the GIL (or the CPU) from it, which is
what a statement on the event loop waits too. Every wake-up later than 3 ms
appends one JSON line: the time, the lateness, and the innermost frames of
every other thread at that moment (the holder has just let go: its frames are
at, or just past, what held it). Nothing happens without CAIRN_GIL_PROBE."""

from __future__ import annotations

import os
import sys

_OUT = os.environ.get("CAIRN_GIL_PROBE")


def _probe(out: str) -> None:
    import json
    import threading
    import time
    import traceback

    me = threading.get_ident()
    with open(out, "a") as sink:
        while True:
            start = time.perf_counter()
            time.sleep(0.0005)
            late = time.perf_counter() - start - 0.0005
            if late <= 0.003:
                continue
            names = {t.ident: t.name for t in threading.enumerate()}
            stacks = {}
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    stacks[names.get(ident, str(ident))] = [
                        f"{os.path.basename(s.filename)}:{s.lineno}:{s.name}"
                        for s in traceback.extract_stack(frame)[-4:]]
            sink.write(json.dumps([time.time(), late, stacks]) + "\n")
            sink.flush()


if _OUT and "serve" in sys.argv:
    import threading

    threading.Thread(target=_probe, args=(_OUT,), daemon=True, name="gil-probe").start()
