"""A read from an object store that a cancelled job does not wait for.

pyarrow's S3 reads cannot be interrupted, and the SDK under them waits as long
as the endpoint sends a byte now and then: a RESTORE whose object dripped (a
byte every 0.4 s) stayed 'running' for the half hour the read took after KILL
JOB, because the job checks for cancellation only between chunks. Here the
read runs on a thread of its own, the job's thread watches for the kill, and
on it the job goes on (to end cancelled) while the read is left to finish
alone; it stops at its next chunk, removing what it wrote."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from catalog.errors import Cancelled

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL_SECONDS = 0.1


def stoppable(fn: Callable[[], T], should_stop: Callable[[], bool], what: str) -> T:
    """`fn()`, or Cancelled as soon as `should_stop()` while it runs (it is abandoned)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the waiting thread, if it still waits
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=body, name="cairn-stoppable-read", daemon=True).start()
    while not done.wait(POLL_SECONDS):
        if should_stop():
            log.warning("%s: cancelled while a read was waiting on the target; "
                        "the read is left to end alone", what)
            raise Cancelled(f"{what} was cancelled")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
