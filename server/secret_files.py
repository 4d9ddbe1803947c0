"""Files of the operator's that hold secrets, and other users of the machine.

Cairn writes no config file, but it reads two that hold secrets: the config
file (`[[auth.tokens]]`, a target's `secret_key`) and `[pgwire] tls_key`. One
left readable by group or others (0644, what an editor makes at umask 022)
gives every user of the machine the admin token, the object store's key or the
listener's private key. `cairn serve` starts anyway (the operator may have
meant it: a group of admins) but says so, one WARNING a file, naming it and
what to do, as ssh does of a private key."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from .config import Config

log = logging.getLogger("cairn.config")


def _open_to_others(path: str | Path) -> int | None:
    """The mode of `path` when group or others may read it, else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    return mode if stat.S_ISREG(st.st_mode) and mode & 0o044 else None


def warn_open_secrets(cfg: Config, path: str | Path | None) -> list[str]:
    """Log a WARNING for each file holding one of `cfg`'s secrets that other
    users may read; the files named (for tests)."""
    held = [what for what, there in (
        ("tokens", bool(cfg.auth.tokens)),
        ("secret keys", any(t.get("secret_key") for t in cfg.backup.targets.values())),
    ) if there]
    found = []
    if path is not None and held and (mode := _open_to_others(path)) is not None:
        log.warning("config file '%s' holds %s and other users of this machine may read it "
                    "(mode %03o): chmod 600 it", path, " and ".join(held), mode)
        found.append(str(path))
    key = cfg.pgwire.tls_key
    if key and (mode := _open_to_others(key)) is not None:
        log.warning("[pgwire] tls_key '%s' is a private key other users of this machine may "
                    "read (mode %03o): chmod 600 it", key, mode)
        found.append(key)
    return found
