"""A role user's work outside a statement (an answer's encoding after its
statements ran, a body's decoding) waits for one of the user's places in the
statement threads however long it takes; only a statement's wait ends at its
query timeout. The encoding was refused at the timeout: an HTTP request's
INSERT had committed and its answer was 409 CANCELLED, so a client that
retried wrote the row twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from catalog.errors import Cancelled
from server.session import Session
from server.threadshare import Holder, Threads


def _limit(_: float, __: float) -> Any:
    return contextlib.nullcontext()


async def test_work_outside_a_statement_waits_past_the_timeout() -> None:
    threads = Threads(4)  # a share of 1
    mallory = Session(user_id="mallory", role="user", timeout=0.2)
    pool = ThreadPoolExecutor(4)
    try:
        release = asyncio.Event()
        loop = asyncio.get_running_loop()

        def hold() -> None:  # her one place, held well past her 0.2 s timeout
            asyncio.run_coroutine_threadsafe(release.wait(), loop).result()

        first = asyncio.ensure_future(threads.run(pool, Holder(mallory), None, hold, _limit))
        await asyncio.sleep(0.05)
        statement = Holder(mallory, time.monotonic() + 0.2)
        with pytest.raises(Cancelled):  # a statement's wait ends at its timeout
            await threads.run(pool, statement, None, lambda: "ran", _limit)
        encoding = asyncio.ensure_future(
            threads.run(pool, Holder(mallory), None, lambda: "encoded", _limit))
        await asyncio.sleep(0.6)  # three times her timeout
        assert not encoding.done()  # still waiting, not refused
        release.set()
        assert await asyncio.wait_for(encoding, 10) == "encoded"
        await first
        assert threads.held == 0 and not threads.by
    finally:
        pool.shutdown(wait=True)
