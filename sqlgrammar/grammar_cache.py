"""Where lark keeps the parser it builds from commands.lark (~100 ms a start).

lark's own default is a predictable name in the shared temp dir, read back with
`pickle.load`: any local user who writes that file first runs code as whoever
next starts Cairn (or `cairn sql`). So the cache is a file in a directory of
this user's own (`<temp dir>/cairn-<uid>`, mode 0700), and it is used only
when the directory and the file are this user's and no one else may write to
them; otherwise (OSError) the grammar is built without a cache."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

import lark


def _ours(st: os.stat_result, kind: int) -> bool:
    """Of this kind (not a link), this user's, and writable by no one else."""
    return (stat.S_IFMT(st.st_mode) == kind and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def cache_path() -> str:
    """The cache file to hand lark. Raises OSError when no private directory
    could be made or trusted, or the file there is not this user's alone."""
    folder = Path(tempfile.gettempdir()) / f"cairn-{os.geteuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(folder)
    if not _ours(st, stat.S_IFDIR) or st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{folder} is not a directory of this user's alone")
    version = f"lark{lark.__version__}-py{sys.version_info[0]}{sys.version_info[1]}"
    path = folder / f"commands-{version}.cache"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return str(path)  # lark writes it: only this user can, in this directory
    if not _ours(st, stat.S_IFREG):
        raise PermissionError(f"{path} is not a file of this user's alone")
    return str(path)
