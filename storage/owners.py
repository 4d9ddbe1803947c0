"""Whether another local user could change what is in a folder of the server's
(the data directory's way, a backup root, a target and the folders on the way
to it): it is theirs, or anyone may write to it and it has no sticky bit (so
anyone may rename or remove what the server put there)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def others_hold(st: os.stat_result) -> str | None:
    """Why another user could change this folder's entries ("belongs to another
    user (uid 1001)", "can be written by any user (mode 0777, no sticky bit)"), or
    None when only the server's user (or root) can. A link is judged by its owner."""
    if st.st_uid not in (os.geteuid(), 0):
        return f"belongs to another user (uid {st.st_uid})"
    if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        return f"can be written by any user (mode {stat.S_IMODE(st.st_mode):04o}, no sticky bit)"
    return None


def others_way(given: str | Path, real: Path) -> str | None:
    """What of another user's is on the way to the folder `real` (the data
    directory, a backup root): a symbolic link on the path as configured
    (`given`: they could point it elsewhere), or a folder above it (they could
    move it away and put one of their own in its place, while the server
    runs). Folders not there yet are not asked: the server makes them."""
    way = Path(os.path.abspath(given))
    for path in (way, *way.parents):
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode) and (why := others_hold(st)) is not None:
                return f"'{path}' is a symbolic link that {why}"
    for path in real.parents:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if (why := others_hold(st)) is not None:
            return f"the folder above it '{path}' {why}"
    return None
