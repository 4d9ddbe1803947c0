"""Named points inside long jobs where tests (and the crash-injection bench)
can act: block until a KILL arrives, raise, or SIGKILL the process.

In production nothing is registered and `hit()` is one dict lookup. A test
registers a callback for a point; `CAIRN_FAULTS=point:action[,…]` in the
environment does the same for a `cairn serve` process (actions: `kill` sends
SIGKILL to itself, `sleep=S` pauses S seconds, `fail` raises), so a crash can
be placed exactly, e.g. after the last object but before the manifest.

Points: backup.snapshot_taken, backup.before_object, backup.mid_object,
backup.before_manifest, backup.between_manifests (a backup set: after a
member's manifest, before the next), backup.after_manifest, backup.landed_read
(a lost job process's manifest read back, before what follows), backup.before_record (the
manifests are in the target, the lock gone, the catalog does not list the backup yet),
restore.before_object, verify.mid_object (VERIFY BACKUP, in its job process:
`bytes_done` read, an object read, decrypted and hashed chunk by chunk),
verify.after_read (VERIFY BACKUP: every object read, the
report made, the target not looked at again),
restore.mid_object, restore.check_file (a fetched file's check, in the job
process: before file `index`), check.reading (VERIFY or a RESTORE's check, in a
job process: the process has told the server it reads file `key` now, and
reads it next; storage/backup/crash_marks.py), restore.before_install, restore.after_install,
prune.before_delete (DROP BACKUP or keep_last: the doomed objects are decided,
none deleted yet; the target's prune lock is held), drop.before_archive_prune (DROP
BACKUP: the manifest and the objects gone, the archived changes it leaves without a
base not yet), archive.before_segment
(changes read from the log, no segment written), archive.after_segment (the
segment is in the target, the catalog does not know it yet), flush.after_install
(a flush's files of one table installed, its job not ended)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

Action = Callable[[dict[str, Any]], None]
_registered: dict[str, Action] = {}


def hit(point: str, **info: Any) -> None:
    action = _registered.get(point)
    if action is not None:
        action(info)


def armed() -> frozenset[str]:
    """The points something is registered for (a job process sends only those back)."""
    return frozenset(_registered)


def register(point: str, action: Action) -> None:
    _registered[point] = action


def clear() -> None:
    _registered.clear()
    load_env()


def _env_action(spec: str) -> Action:
    if spec == "kill":
        return lambda info: os.kill(os.getpid(), signal.SIGKILL)
    if spec.startswith("sleep="):
        seconds = float(spec.split("=", 1)[1])
        return lambda info: time.sleep(seconds)
    if spec == "fail":
        def fail(info: dict[str, Any]) -> None:
            raise RuntimeError(f"injected fault at {info}")
        return fail
    raise ValueError(f"unknown fault action {spec!r}")


def load_env() -> None:
    """Read CAIRN_FAULTS, e.g. `backup.before_manifest:kill`."""
    for part in filter(None, os.environ.get("CAIRN_FAULTS", "").split(",")):
        point, _, spec = part.partition(":")
        _registered[point.strip()] = _env_action(spec.strip())


load_env()
