"""Names and paths inside a repository, and the checks that keep user-supplied
ids from ever becoming paths outside it.

    config.json
    objects/<aa>/<sha256>      immutable content, named by the sha256 of its bytes
    manifests/<backup_id>.json one per backup, written last
    locks/<backup_id>.json     oids a running backup relies on (prune keeps them)
    keys/<key_id>.json         scrypt salt and parameters of an encryption key
    prunes/<token>.json        a prune is running (backups wait for it; see prunes.py)
    tmp/[<writer>-<tag>]<random>.tmp in-flight writes; anything here after a crash is junk
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from catalog.errors import InvalidArgument

CONFIG = "config.json"
OBJECTS = "objects"
MANIFESTS = "manifests"
LOCKS = "locks"
KEYS = "keys"
PRUNES = "prunes"
TMP = "tmp"

INTERNAL = (CONFIG, OBJECTS, MANIFESTS, LOCKS, KEYS, PRUNES, TMP)

_OID = re.compile(r"^[0-9a-f]{64}\Z")
_TEMP = re.compile(r"^(?:([0-9a-f]{16})-)?[0-9a-f]{32}\.tmp\Z")
_WRITER = re.compile(r"^[0-9a-f]{16}\Z")
_BACKUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_TAG = re.compile(r"^[0-9a-f]{8}\Z")

# The first 8 of a temp file's 32 random hex digits name the process that
# writes it (`process_tag`): a server's clean-up of its own temp files spares
# those of its processes still running (server/repos.py remove_own_tmp).
_process_tag = secrets.token_hex(4)


def check_oid(oid: object) -> str:
    """An object id is exactly 64 lower-case hex digits (a sha256)."""
    if not isinstance(oid, str) or not _OID.match(oid):
        raise InvalidArgument(f"invalid object id {oid!r}: expected 64 lower-case hex digits")
    return oid


def is_oid(name: str) -> bool:
    return bool(_OID.match(name))


def check_backup_id(backup_id: object) -> str:
    """Backup ids become file names, so they are restricted to a safe alphabet."""
    if not isinstance(backup_id, str) or not _BACKUP_ID.match(backup_id):
        raise InvalidArgument(
            f"invalid backup id {backup_id!r}: use letters, digits, '_', '.', '-' (at most 128)"
        )
    return backup_id


def is_backup_id(name: str) -> bool:
    return bool(_BACKUP_ID.match(name))


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def object_path(base: str, oid: str) -> str:
    return join(base, OBJECTS, oid[:2], oid)


def manifest_path(base: str, backup_id: str) -> str:
    return join(base, MANIFESTS, f"{backup_id}.json")


def lock_path(base: str, backup_id: str) -> str:
    return join(base, LOCKS, f"{backup_id}.json")


def key_path(base: str, key_id: str) -> str:
    return join(base, KEYS, f"{key_id}.json")


def temp_path(base: str, writer: str = "") -> str:
    """A new temp file's path; `writer` (16 hex digits, the server's: see
    Target.writer) starts its name, so a server's start-up clean-up can tell
    its own leftovers from the writes other servers have in flight, and the
    process tag follows it, so a clean-up can tell a file a running process
    of the server holds from one a dead process left."""
    if not _WRITER.match(writer):
        return join(base, TMP, f"{secrets.token_hex(16)}.tmp")
    return join(base, TMP, f"{writer}-{_process_tag}{secrets.token_hex(12)}.tmp")


def process_tag() -> str:
    """This process's tag in the names of the temp files it writes."""
    return _process_tag


def set_process_tag(tag: str) -> None:
    """A job process takes the tag its server gave it (storage/jobproc.py), so
    the server knows whose temp files those are."""
    global _process_tag
    if not _TAG.match(tag):
        raise ValueError(f"a process tag is 8 hex digits, not {tag!r}")
    _process_tag = tag


def is_temp_name(name: str) -> bool:
    """A name `temp_path` gives: clean-up deletes nothing else from `tmp/`."""
    return bool(_TEMP.match(name))


def temp_writer(name: str) -> str:
    """The writer a temp file's name gives ('' for none)."""
    found = _TEMP.match(name)
    return (found.group(1) or "") if found else ""


def temp_tag(name: str) -> str:
    """The process tag of a temp file with a writer ('' for none). Files of
    earlier versions have 8 random digits there: no process of a server has
    that tag, so they count as a dead process's."""
    return name[17:25] if temp_writer(name) else ""


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds, the contract's timestamp form."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
