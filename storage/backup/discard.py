"""A local target a failed backup left as it found it, but for the skeleton
its first write made: `config.json`, a key file, empty `locks/`, `tmp/`,
`prunes/`, `objects/xx/`. Once the run is abandoned (its lock and objects
gone), `discard_skeleton` removes that skeleton when nothing else is in the
target, so the target is not there again (SHOW BACKUPS IN it is NOT_FOUND).

Targets are shared (docs/reliability.md): another server may have read the
config a moment before it went and be about to write. So the removal is
undone when anything appears meanwhile (`restore`), and every writer checks,
once its lock is written, that the config and the key it writes with are
still there, and writes them back if not (`confirm`): whichever comes last
puts them back, with the same bytes. A writer racing the removal may fail
(UNAVAILABLE: a folder it had just made went), never write into a target
without its config. Object storage (S3) is left as it is: its config and key
stay, a target that lists no backups."""

from __future__ import annotations

import contextlib
import logging
import os

from .atomic import make_dirs, write_small
from .layout import CONFIG, KEYS, join, key_path
from .targets import Target

log = logging.getLogger(__name__)

# What a backup's first write makes: empty but for the config and key files.
SKELETON = frozenset({"objects", "locks", "prunes", "tmp", "keys", "manifests"})


def discard_skeleton(target: Target, durable: bool) -> bool:
    """Remove a local target holding only a config, key files and empty
    folders (what no backup, lock or prune uses); True when it is gone."""
    if target.kind != "local":
        return False
    found = _skeleton(target.base)
    if found is None:
        return False
    files, folders = found
    keys = join(target.base, KEYS)
    for folder in sorted(folders, key=len, reverse=True):  # the deepest first
        if folder != keys:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError:  # not empty: someone is writing; nothing of theirs went
                return False
    kept = {path: data for path in files if (data := _read(path)) is not None}
    config = join(target.base, CONFIG)
    for path in sorted(files, key=lambda p: p == config):  # the config last
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    for folder in (keys, target.base):
        with contextlib.suppress(OSError):  # not empty: someone is writing
            os.rmdir(folder)
    if os.path.lexists(target.base):
        restore(target, kept, durable)
        return False
    return True


def restore(target: Target, kept: dict[str, bytes], durable: bool) -> None:
    """Something appeared while the skeleton went: its config and keys back."""
    for path, data in kept.items():
        if not os.path.lexists(path):
            write_small(target, path, data, durable)
    log.info("backup target '%s' was being written by another server: kept", target.uri)


def _skeleton(base: str) -> tuple[list[str], list[str]] | None:
    """(files, folders) of a target that is a bare skeleton, else None."""
    files: list[str] = []
    folders: list[str] = []
    try:
        top = list(os.scandir(base))
    except OSError:
        return None
    for entry in top:
        if entry.is_symlink():
            return None
        if entry.name == CONFIG and entry.is_file():
            files.append(entry.path)
        elif entry.name in SKELETON and entry.is_dir():
            for root, dirs, names in os.walk(entry.path):
                folders.append(root)
                if any(os.path.islink(join(root, d)) for d in dirs):
                    return None
                for name in names:
                    path = join(root, name)
                    if entry.name != KEYS or root != entry.path or os.path.islink(path):
                        return None  # a lock, an object, a manifest, a temp file
                    files.append(path)
        else:
            return None
    return files, folders


def unmade(target: Target) -> bool:
    """Whether a local target has no config.json yet: a backup starting into it
    makes it (the server's note for a clean-up after its job process)."""
    return target.kind == "local" and not os.path.lexists(join(target.base, CONFIG))


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError:
        return None


def confirm(target: Target, config: bytes | None, key: tuple[str, bytes] | None,
            durable: bool) -> None:
    """A writer's check once its lock is written: its config and key file are
    there (written back, the same bytes, when a failed backup's clean-up took
    them a moment before the lock appeared)."""
    if target.kind != "local":
        return
    if config is not None and not os.path.lexists(join(target.base, CONFIG)):
        write_small(target, join(target.base, CONFIG), config, durable)
        log.info("backup target '%s': config.json written back", target.uri)
    if key is not None:
        path = key_path(target.base, key[0])
        if not os.path.lexists(path):
            make_dirs(target, join(target.base, KEYS))
            write_small(target, path, key[1], durable)
