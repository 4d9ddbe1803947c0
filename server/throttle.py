"""A byte-rate limit for backup, restore and verify I/O (`[backup]
throttle_bytes_per_second`), so a large backup can run beside production
traffic without saturating the disk or the network. 0 means no limit."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Call `spent(n)` after moving n bytes; it sleeps while the run is ahead of
    the allowed rate, in slices short enough that cancellation stays prompt."""

    def __init__(self, bytes_per_second: float, should_stop: Callable[[], bool] | None = None):
        self.rate = float(bytes_per_second)
        self.should_stop = should_stop or (lambda: False)
        self.start = time.monotonic()
        self.total = 0

    def spent(self, n: int) -> None:
        if self.rate <= 0:
            return
        self.total += n
        due = self.start + self.total / self.rate
        while not self.should_stop():
            left = due - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))
