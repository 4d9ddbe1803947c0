"""Clean-up of a target's `tmp/`: the temp files crashed writes left there.

A temp file's name says which server writes it (its writer) and which of that
server's processes (its process tag: layout.temp_path). A server removes its
own files but those of its processes still running (`spare`), so a job or an
archive of its own writing into the same target meanwhile keeps its file;
another server's file goes only once it is old (a write in flight keeps its
mtime fresh), its age judged by the clock that stamps the target's files
(prunes.store_now_ns), as a prune marker's is: by this server's own clock, two
days ahead, a restart removed the file another server was writing right then."""

from __future__ import annotations

import time
from collections.abc import Callable

import pyarrow.fs as pafs

from .layout import TMP, is_temp_name, join, temp_tag, temp_writer
from .listing import list_folder
from .oserrors import writing
from .prunes import store_now_ns
from .targets import Target

Spare = Callable[[str], bool]  # a process tag -> whether its files stay (it runs)


def remove_tmp(target: Target, older_than_seconds: float | None = None, writer: str = "",
               spare: Spare | None = None, only: Spare | None = None) -> int:
    """Delete leftovers of crashed writes in `tmp/`; returns how many.

    Only safe while no write is running against this target, unless
    `older_than_seconds` spares files that may still be in use; those named
    by `writer` (this server's) go at any age, but those whose process tag
    `spare` says runs. `only` (a sweep while the server runs): nothing but
    this server's files whose tag it names (processes it saw end), so no
    file of another server goes, even one sharing its writer id."""
    infos = list_folder(target, join(target.base, TMP))
    cutoff = (
        None if older_than_seconds is None else time.time_ns() - int(older_than_seconds * 1e9)
    )
    removed = 0
    with writing(target.uri):
        for info in infos:
            name = info.base_name
            if info.type != pafs.FileType.File or not is_temp_name(name):
                continue  # only what Cairn's own writes leave is removed
            mine = bool(writer) and temp_writer(name) == writer
            if only is not None and not (mine and only(temp_tag(name))):
                continue
            if mine and spare is not None and spare(temp_tag(name)):
                continue  # a process of this server that runs writes it
            if (not mine and cutoff is not None and info.mtime_ns is not None
                    and not _old(target, info.mtime_ns, cutoff)):
                continue
            try:
                target.fs.delete_file(info.path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def _old(target: Target, mtime: int, cutoff: int) -> bool:
    """Older than the cutoff by this server's clock, and by the store's too: a
    server whose clock runs ahead sees every file of another server as old."""
    if mtime > cutoff:
        return False
    return store_now_ns(target, mtime) - mtime > time.time_ns() - cutoff
