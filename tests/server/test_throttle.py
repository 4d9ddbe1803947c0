"""The byte-rate throttle (`[backup] throttle_bytes_per_second`)."""

from __future__ import annotations

import time

from server.throttle import BURST_SECONDS, Throttle


def test_it_holds_a_run_to_the_rate() -> None:
    throttle = Throttle(1_000_000)
    started = time.monotonic()
    for _ in range(4):
        throttle.spent(50_000)
    assert time.monotonic() - started >= 0.19  # 200 KB at 1 MB/s


def test_a_stall_does_not_buy_a_burst_afterwards() -> None:
    """A run that fell behind (gave way to statements, checked a file) moves at
    the rate afterwards, not at the disk's speed until it is back on schedule."""
    throttle = Throttle(1_000_000)
    throttle.spent(100_000)
    time.sleep(1.0)  # a stall worth 1 MB of allowance
    started = time.monotonic()
    for _ in range(5):
        throttle.spent(100_000)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.5 - BURST_SECONDS - 0.02, elapsed


def test_zero_means_no_limit() -> None:
    throttle = Throttle(0)
    started = time.monotonic()
    throttle.spent(10**12)  # would otherwise wait for ever (or divide by zero)
    # Seconds of margin: a loaded CI machine may not run this thread for
    # 50 ms, the bound this had.
    assert time.monotonic() - started < 5


def test_a_stop_ends_the_wait() -> None:
    throttle = Throttle(1_000, should_stop=lambda: True)
    started = time.monotonic()
    throttle.spent(10**9)  # would otherwise wait 11 days
    assert time.monotonic() - started < 5  # seconds of margin, as above
