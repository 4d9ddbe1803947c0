"""Imported before the server (bench/restore_timeline.py): wraps the functions a
RESTORE runs through, by name, so each call's start and end go to stderr as
`TL {json}` lines (unix time, thread, name, event). Only for the bench; a
name a checkout lacks is skipped, so one hooks file serves before and after."""

from __future__ import annotations

import functools
import importlib
import json
import sys
import threading
import time
from typing import Any

NAMES = [
    ("server.restore_run", "run_restore"), ("server.restore_run", "choose_manifest"),
    ("server.restore_run", "_replay"), ("server.restore_run", "_prepare"),
    ("storage.archive.pitr", "plan"), ("storage.archive.store", "read_segment"),
    ("storage.archive.replay", "replay"), ("storage.archive.replay", "write_rows"),
    ("storage.install", "run"), ("storage.install", "_fetch_all"),
    ("storage.install", "_check_contents"), ("storage.install", "_count_live"),
    ("storage.install", "install"), ("storage.install", "count_live"),
    ("storage.install", "_extra"), ("storage.install", "_side"),
    ("storage.backup.repository", "Repository.read_object_to"),
]


def emit(name: str, event: str) -> None:
    line = json.dumps({"t": time.time(), "th": threading.current_thread().name,
                       "n": name, "e": event})
    sys.stderr.write(f"TL {line}\n")


def wrap(fn: Any, name: str) -> Any:
    @functools.wraps(fn)
    def inner(*a: Any, **k: Any) -> Any:
        emit(name, "start")
        try:
            return fn(*a, **k)
        finally:
            emit(name, "end")
    return inner


for mod_name, attr in NAMES:
    try:
        mod = importlib.import_module(mod_name)
    except ImportError:
        continue
    owner: Any = mod
    *path, last = attr.split(".")
    for part in path:
        owner = getattr(owner, part, None)
    fn = getattr(owner, last, None) if owner is not None else None
    if fn is not None:
        setattr(owner, last, wrap(fn, f"{mod_name.rsplit('.', 1)[-1]}.{attr}"))
