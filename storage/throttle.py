"""The byte-rate limit of a job's transfer (`[backup]
throttle_bytes_per_second`): a `Throttle` a run tells of the bytes it
moved, and which sleeps while the run is ahead of the rate. Here, not in
server/throttle.py, so a job process builds its own: a throttled VERIFY
reads its files there, not in the server (storage/backup/verify.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

# How far behind the allowed rate a run may fall and still catch up at full
# speed: a run that stalled (gave way to statements, checked a file's content,
# waited for a paused job to resume) otherwise owes nothing for the whole stall
# and then moves as fast as the disk allows until it is back on schedule, which
# is the saturation the limit exists to prevent.
BURST_SECONDS = 0.1


class Throttle:
    """Call `spent(n)` after moving n bytes; it sleeps while the run is ahead of
    the allowed rate, in slices short enough that cancellation stays prompt.
    Time the run spent behind the rate counts only up to `BURST_SECONDS`."""

    def __init__(self, bytes_per_second: float, should_stop: Callable[[], bool] | None = None):
        self.rate = float(bytes_per_second)
        self.should_stop = should_stop or (lambda: False)
        self.due = time.monotonic()  # when the bytes moved so far are paid for
        self.total = 0

    def spent(self, n: int) -> None:
        if self.rate <= 0:
            return
        self.total += n
        self.due = max(self.due, time.monotonic() - BURST_SECONDS) + n / self.rate
        due = self.due
        while not self.should_stop():
            left = due - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))
