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

_left = 0  # calls abandoned in this process and still running
_left_lock = threading.Lock()


def left_running() -> int:
    """How many abandoned calls still wait on their endpoints: pyarrow's own
    exit waits for every S3 request running in the process (server/serving.py)."""
    with _left_lock:
        return _left


def left(change: int) -> None:
    """A call was abandoned (+1), or an abandoned one ended (-1)."""
    global _left
    with _left_lock:
        _left += change


def stoppable(fn: Callable[[], T], should_stop: Callable[[], bool], what: str,
              late: Callable[[], None] | None = None) -> T:
    """`fn()`, or Cancelled as soon as `should_stop()` while it runs (it is abandoned).
    `late` runs on the call's thread once an abandoned call has ended, however
    it ended: it undoes what the call did after nobody waited for it (a
    BACKUP's manifest that landed after its job ended cancelled). A call that
    ended before the abandon is returned, never undone: the guard decides."""
    box: dict[str, Any] = {}
    done = threading.Event()
    guard = threading.Lock()

    def body() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the waiting thread, if it still waits
            box["error"] = e
        finally:
            with guard:
                done.set()
                abandoned = bool(box.get("abandoned"))
            if abandoned:
                try:
                    if late is not None:
                        late()
                except Exception:
                    log.warning("%s: undoing what a call left running did failed", what,
                                exc_info=True)
                finally:
                    left(-1)

    threading.Thread(target=body, name="cairn-stoppable-read", daemon=True).start()
    while not done.wait(POLL_SECONDS):
        if should_stop():
            with guard:
                if done.is_set():
                    break
                box["abandoned"] = True
                left(+1)
            log.warning("%s: cancelled while a read was waiting on the target; "
                        "the read is left to end alone", what)
            raise Cancelled(f"{what} was cancelled")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
