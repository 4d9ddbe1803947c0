"""Whether the process that wrote a prune marker or a lock on this host still runs.

A pid alone is not enough: pids are reused, and a marker of a prune that
crashed days ago may name a pid some other process has now. So a process that
started after the file was written (its start time from /proc) is not the
writer."""

from __future__ import annotations

import os

START_SLACK = 2.0  # seconds: /proc's boot time is whole seconds, ticks are coarse


def process_state(pid: int, written_at: float | None = None) -> str:
    """'alive' (the writer runs), 'dead' (no such process, a zombie, or one that
    started after `written_at`, a Unix time), or 'unknown' (no /proc)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b") ", 1)[1].split()
    except FileNotFoundError:
        return "dead"
    except (OSError, IndexError):
        return "unknown"
    if fields[0] in (b"Z", b"X"):
        # A job process killed with its server (storage/jobproc.py) stays a
        # zombie until its new parent reaps it: its marker must not hold up
        # the restarted server's sweep.
        return "dead"
    if written_at is not None:
        started = _started(int(fields[19]))
        if started is not None and started > written_at + START_SLACK:
            return "dead"  # the pid was reused
    return "alive"


def _started(ticks: int) -> float | None:
    """A process's start as a Unix time, from its start in ticks since boot."""
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return int(line.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return None
