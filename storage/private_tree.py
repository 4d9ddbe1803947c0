"""Closing a data directory's tree to other local users, once, when it is found
open (a data directory of a release before the twenty-first round: 0755 folders
and 0644 files at the usual umask).

Making only the top folder 0700 kept out whoever came later, not a shell of
another user's already inside (`cd <data>/files/ns` while it was open): from
there, every file the server added read as before. So each folder and file of
the server's user that group or others may use loses those bits. Nothing is
followed: each folder is opened with O_NOFOLLOW from its parent's descriptor
and changed through it (fchmod), each file likewise, so a link (or a folder
swapped for one) never sends a chmod elsewhere. Entries of other users (and
links, FIFOs, sockets) are left as they are."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def _loose(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and bool(stat.S_IMODE(st.st_mode) & 0o077)


def _close(fd: int, kind: int, counts: list[int]) -> None:
    """fchmod go= the file or folder open on `fd`, when it is still of `kind`
    (S_IFDIR, S_IFREG), the server user's and open to others: counted changed,
    or refused when the file system says no (a read-only mount inside the
    tree, an immutable file: the rest is still closed, the start goes on)."""
    st = os.fstat(fd)
    if stat.S_IFMT(st.st_mode) != kind or not _loose(st):
        return
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~0o077)
    except OSError:
        counts[2] += 1
        return
    counts[0] += 1


def close_tree(top: str | os.PathLike[str], names: tuple[str, ...]) -> tuple[int, int, int]:
    """The folders `names` in `top` (those that are there, not links) and
    everything below them made the owner's alone, as the module says: (how
    many were changed, how many were looked at, how many the file system
    refused to change). `top` itself is not changed."""
    counts = [0, 0, 0]
    fd = os.open(top, _DIR)
    try:
        for name in names:
            try:
                sub = os.open(name, _DIR, dir_fd=fd)
            except OSError:
                continue  # not there, a link, or not a folder: not followed
            try:
                counts[1] += 1
                _close(sub, stat.S_IFDIR, counts)
                _walk(sub, counts)
            finally:
                os.close(sub)
    finally:
        os.close(fd)
    return counts[0], counts[1], counts[2]


def _entries(fd: int) -> Iterator[os.DirEntry[str]]:
    with os.scandir(fd) as it:
        return iter(list(it))


def _walk(fd: int, counts: list[int]) -> None:
    """Depth first below the folder open on `fd`, without recursion (a tree
    nested deeper than Python's stack failed the start: RecursionError): one
    descriptor open a level, each closed when its folder is done."""
    stack = [(fd, _entries(fd))]
    try:
        while stack:
            here, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                if here != fd:
                    os.close(here)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            counts[1] += 1
            if stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(entry.name, _DIR, dir_fd=here)
                except OSError:
                    continue  # swapped for a link, or gone: not followed
                try:
                    _close(sub, stat.S_IFDIR, counts)
                    stack.append((sub, _entries(sub)))
                except BaseException:
                    os.close(sub)
                    raise
            elif stat.S_ISREG(st.st_mode) and _loose(st):
                try:
                    handle = os.open(entry.name, _FILE, dir_fd=here)
                except OSError:
                    continue
                try:
                    _close(handle, stat.S_IFREG, counts)
                finally:
                    os.close(handle)
    finally:
        for here, _ in stack:
            if here != fd:
                os.close(here)
