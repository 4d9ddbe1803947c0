"""A target becoming a repository: its `config.json` written, and the nesting
rule (targets.py) asked again once it is there.

The rule was asked only before: two servers creating `<root>/n0` and
`<root>/n0/locks` at the same moment both passed it (neither config existed
yet), both succeeded, and every DROP BACKUP and keep_last of `n0` then read
the inner `config.json` as a damaged lock. Asked again after the write, at
least the second of the two sees the first and backs out (removes the config
it wrote): both may refuse, never both succeed."""

from __future__ import annotations

import contextlib
from typing import Any

from catalog.errors import BackupInvalid, CairnError, PermissionDenied

from .atomic import delete_quietly, held_as_written, make_dirs, read_small, write_small
from .config import encode_config, new_config, parse_config
from .layout import CONFIG, join
from .oserrors import writing
from .targets import Target, refuse_nested, refuse_nested_remote


def create(target: Target, uri: str, durable: bool) -> dict[str, Any]:
    """Make `target` a repository: its config, written once no repository is
    found above it or in its internal folders, before and after the write."""
    with writing(uri):
        refuse_nested_remote(target)  # local targets: checked on every resolve
        make_dirs(target, target.base)
    config = new_config()
    path, data = join(target.base, CONFIG), encode_config(config)
    write_small(target, path, data, durable)
    if target.kind != "local":
        config = _held(target, uri, path, data) or config
    try:
        with writing(uri):
            refuse_nested(target)
    except PermissionDenied:
        with contextlib.suppress(CairnError, OSError):
            if read_small(target, path) == data:  # still ours: nothing else went in
                with writing(uri):
                    target.fs.delete_file(path)
        raise
    return config


def _held(target: Target, uri: str, path: str, data: bytes) -> dict[str, Any] | None:
    """The config object storage holds once it acknowledged ours: ours (None), or
    another server's that made the target at the same moment (a sound config
    of other bytes). Absent, cut short or changed, it is Unavailable
    (atomic.held_as_written), and one that does not parse is removed again:
    every backup into the target was refused as damaged after it."""
    back = read_small(target, path)
    if back is not None and back != data:
        try:
            return parse_config(back, uri)
        except BackupInvalid:
            delete_quietly(target, path)
    held_as_written(target, path, data, back)
    return None
