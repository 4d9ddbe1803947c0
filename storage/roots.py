"""What the server checks of its backup roots when it starts, as it checks its
data directory (datadir.py).

A root below another user's folder (they could move it away and put a folder of
their own in its place, which took every backup after), reached through a link
of another user's (they could point it elsewhere), or that is another user's,
is refused: CannotStart, naming it. Each target is still asked again when a
statement names it, and its folders when a job makes them (targets.py,
way.py): this says it once, at start, for the whole configuration.

A root open to other users is not changed (the backups in it are the
operator's: a group may be meant to read them), but said: one WARNING a root.
Targets and archives Cairn makes are 0700 and 0600; ones made by an older
release are 0755 and 0644, readable by any local user through a root they can
enter. Group bits count as other users, as they do for the data directory
(which is set to 0700): a group-writable root lets the group's members remove
or replace its backups."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from catalog.errors import CannotStart
from storage.backup.layout import CONFIG
from storage.owners import others_hold, others_way

log = logging.getLogger("cairn.storage")

_ARCHIVES = (".tar", ".tar.zst")
_SHOWN = 3


def check_roots(given: list[str], resolved: list[str]) -> list[str]:
    """Refuse (CannotStart) a root whose way, or which itself, another user
    holds; warn of each root open to others. `given`: `[backup] roots` as
    configured (empty: the default root in the data directory, checked with
    it); `resolved`: the same, links resolved. The roots warned of (for tests)."""
    warned = []
    for root, real in zip(given, resolved, strict=False):
        try:
            why = others_way(root, Path(real))
        except OSError as exc:  # a folder on the way the server may not look into
            raise CannotStart(
                f"backup root '{root}' cannot be checked: {exc.strerror or exc} "
                f"('{exc.filename or real}'): give [backup] roots a folder the server's user "
                f"can reach") from exc
        if why is not None:
            raise CannotStart(
                f"backup root '{root}' is not allowed: {why}: another user could move it or "
                f"point it elsewhere, and remove its backups or put others in their place: "
                f"give [backup] roots a folder on a way of your own")
        try:
            st = os.stat(real)
        except OSError:
            continue  # made by the first statement that names it (0700), or refused there
        if (why := others_hold(st)) is not None:
            raise CannotStart(
                f"backup root '{root}' is not allowed: it {why}: another user could remove "
                f"its backups or put others in their place: make it the server's user's "
                f"alone (chown, chmod 700), or give [backup] roots another folder")
        if _warn_open(root, real, st):
            warned.append(root)
    return warned


def _warn_open(root: str, real: str, st: os.stat_result) -> bool:
    """One WARNING for a root other users can enter: of the root itself when it
    is the server's user's (chmod is the owner's to run), of the loose targets
    at its top when it is a shared sticky folder (/var/tmp: open by design)."""
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077 or not stat.S_ISDIR(st.st_mode) or real == os.sep:
        return False
    if mode & stat.S_ISVTX:
        loose = _loose_targets(real)
        if not loose:
            return False
        shown = ", ".join(f"'{p}'" for p in loose[:_SHOWN]) + (", …" if len(loose) > _SHOWN else "")
        log.warning("backup root '%s' is shared with other users (mode %04o) and %d backup "
                    "target(s) in it made by an older release are open to them (%s): "
                    "chmod -R go= each", root, mode, len(loose), shown)
        return True
    if st.st_uid != os.geteuid():
        return False  # root's folder, the server a user of it: not the server's to close
    group = (", and members of its group may remove or replace them"
             if mode & stat.S_IWGRP else "")
    log.warning("backup root '%s' is open to other users (mode %04o): backups in it made "
                "by an older release (0755 folders, 0644 files) can be read by any local "
                "user%s; if it holds only backups, run: chmod -R go= '%s'",
                root, mode, group, root)
    return True


def _loose_targets(real: str) -> list[str]:
    """The server user's targets (a folder with a config.json) and archives at
    the top of the shared folder `real` that others may read or enter."""
    found = []
    try:
        with os.scandir(real) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_uid != os.geteuid() or not stat.S_IMODE(st.st_mode) & 0o077:
                    continue
                if stat.S_ISREG(st.st_mode) and entry.name.lower().endswith(_ARCHIVES) or \
                        stat.S_ISDIR(st.st_mode) and os.path.isfile(
                            os.path.join(entry.path, CONFIG)):
                    found.append(entry.path)
    except OSError:
        return []
    return sorted(found)
