"""Time-ordered unique ids (`job-…`, `bk-…`): sortable by creation time, like ULIDs."""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
ID_CHARS = f"[{_ALPHABET}]{{20}}"  # a regular expression of what follows `prefix-`
_lock = threading.Lock()
_last_ms = 0
_counter = 0
# The random part: unique, not secret (no id is a credential), so from a
# generator seeded once from os.urandom, not a call of it per id: that is a
# system call, which lets the server's GIL go beside the statements on the
# event loop (bench/gil_takes.py). Seeded again in a forked child.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def _b32(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """`prefix-` + 10 chars of milliseconds + 4 of a per-ms counter + 6 random.

    Ids made in one process sort in creation order even within a millisecond."""
    global _last_ms, _counter
    with _lock:
        ms = int(time.time() * 1000)
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
        else:
            _counter = 0
        _last_ms = ms
        count = _counter
    rand = _random.getrandbits(30)
    return f"{prefix}-{_b32(ms, 10)}{_b32(count, 4)}{_b32(rand, 6)}"


def id_ms(made: str) -> int | None:
    """The milliseconds an id of `new_id` carries; None for text that is not one."""
    _, _, body = made.rpartition("-")
    if len(body) != 20:
        return None
    value = 0
    for ch in body[:10]:
        digit = _ALPHABET.find(ch)
        if digit < 0:
            return None
        value = value * 32 + digit
    return value


def id_time(made: str) -> str:
    """The ISO-8601 UTC time (ms, `Z`) an id of `new_id` carries: a row's
    created_at that sorts as its id does, even when the clock went back."""
    ms = id_ms(made) or 0
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def floor_after(made: str) -> None:
    """Ids made from now on sort after `made` (an id persisted by an earlier
    process), even with the clock set back across a restart: their time part
    never goes below its time. Jobs' ids and created_at order SHOW JOBS and the
    history trim; set back an hour, new jobs sorted under old ones, and the
    trim by count took the newest records."""
    global _last_ms, _counter
    ms = id_ms(made)
    if ms is None:
        return
    with _lock:
        if ms + 1 > _last_ms:
            _last_ms, _counter = ms + 1, -1
