"""An archiver's calls to an object-storage target, each waited for at most
`[backup] s3_deadline_seconds`.

A cycle writes its segment (and lists the archive's segments first) under the
archiver's lock, which STOP ARCHIVING takes. A store that drips its answers (a
byte every 0.5 s is fast enough for the SDK never to time out) held the cycle,
hence the lock, for good: STOP ARCHIVING never answered, and SHOW ARCHIVES said
`running` with no `last_error` while nothing shipped. Here such a call runs on
a thread of its own; past the deadline the cycle fails UNAVAILABLE (recorded as
any failed cycle: `failed`, `last_error`, retried with backoff) and the call
is abandoned, to end when the store lets it (pyarrow cannot stop it).

An abandoned write may still land, so while it runs no further call of that
archiver starts: each is UNAVAILABLE at once, and so is the first after it
ended, so that the cycle after that looks in the target before it writes, as
after any failed cycle (its segment may have landed): no two segments overlap. Local targets are
called as before, on the cycle's own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from catalog.errors import Unavailable
from storage.archive.steps import pacing
from storage.backup import Repository, stoppable

T = TypeVar("T")


class TargetWait:
    """The calls of one archiver: one at a time, each within `deadline` s."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.left: threading.Thread | None = None  # an abandoned call still running

    def __call__(self, fn: Callable[..., T], repo: Repository, *args: Any) -> T:
        if repo.target.kind != "s3" or self.deadline <= 0:
            return fn(repo, *args)
        if self.left is not None:
            if self.left.is_alive():
                raise Unavailable(
                    f"backup target '{repo.uri}' has not yet answered a call archiving "
                    f"gave up on after {self.deadline:g} s ([backup] s3_deadline_seconds): "
                    "nothing more is written there until it has")
            # It ended, perhaps after the cycle looked in the target (Archiver.resume):
            # one more failed cycle, so that the next looks again before it writes.
            self.left = None
            raise Unavailable(f"backup target '{repo.uri}' has answered a call archiving "
                              "gave up on: it is looked at again before anything is written")
        box: dict[str, Any] = {}
        guard = threading.Lock()

        def body() -> None:
            try:
                with pacing():  # as on the cycle's thread (storage/archive/steps.py)
                    box["value"] = fn(repo, *args)
            except BaseException as exc:  # handed to the cycle, if it still waits
                box["error"] = exc
            finally:
                with guard:
                    box["done"] = True
                    if "abandoned" in box:
                        stoppable.left(-1)  # no longer in the way of the server's exit

        call = threading.Thread(target=body, name="cairn-archive-call", daemon=True)
        call.start()
        call.join(self.deadline)
        with guard:
            if "done" not in box:
                box["abandoned"] = True
                stoppable.left(+1)  # counted, as server/s3calls.py's (server/serving.py)
        if "abandoned" in box:
            self.left = call
            raise Unavailable(
                f"backup target '{repo.uri}' did not answer within {self.deadline:g} s "
                "([backup] s3_deadline_seconds) while archiving wrote to it: not shipped, "
                "tried again once it answers")
        if "error" in box:
            raise box["error"]
        return box["value"]
