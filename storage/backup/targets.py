"""Where backups live: turning a user's target string into a file system and a base path.

Every path a user can type ends up here, so this is where confinement is enforced:
local targets must resolve, symlinks and all, inside a configured backup root.
Object storage targets (`s3://…` or a configured name) get an `S3FileSystem`.
A local target ending in `.tar` or `.tar.zst` is an archive: one file holding
one backup (see archive.py), confined like any other local target.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from catalog.errors import CairnError, InvalidArgument, PermissionDenied
from storage.owners import others_hold

from .layout import CONFIG, INTERNAL, KEYS, MANIFESTS, OBJECTS
from .nofollow import no_follow_fs
from .oserrors import describe
from .s3client import new_s3_filesystem
from .way import file_on_way, refuse_foreign

log = logging.getLogger(__name__)

TargetKind = Literal["local", "s3", "archive"]
ARCHIVE_SUFFIXES = (".tar", ".tar.zst")

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Target:
    """A resolved backup target.

    `base` is the repository's path inside `fs` (a local absolute path, or
    `bucket/prefix` for S3, or the archive file); `uri` is what users are shown."""

    fs: pafs.FileSystem = field(compare=False, repr=False)
    base: str
    uri: str
    kind: TargetKind
    # Names this server's temp files (layout.temp_path): 16 hex digits, or ''.
    writer: str = field(default="", compare=False)


def resolve_target(target: str, roots: list[str], named: dict[str, dict[str, Any]],
                   data_dir: str | None = None) -> Target:
    """Resolve `target` (a name, relative or absolute path, `s3://` URI or named target).

    Raises InvalidArgument for an empty or malformed target and PermissionDenied
    for a local path that is, or resolves to, a place outside every backup root,
    or inside the server's `data_dir` but not inside its `backups/`."""
    if not isinstance(target, str) or not target.strip():
        raise InvalidArgument("backup target must not be empty")
    if "\x00" in target:
        raise InvalidArgument(f"backup target {target!r} contains a NUL character")
    if target in named:
        return _named_s3(target, named[target])
    if target.lower().startswith("s3://"):
        return _s3_uri(target, named)
    if _SCHEME.match(target):
        raise InvalidArgument(
            f"backup target '{target}' uses an unsupported scheme; use a path or s3://bucket/prefix"
        )
    return _local(target, roots, data_dir)


# --- local -------------------------------------------------------------------------


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


# Room a target's path leaves for what goes inside it (`objects/<aa>/<sha256>`
# with an encoding's suffix, `tmp/<random>.tmp`, `archives/<ns>/<id>/<segment>`).
_INSIDE = 256
_NAME_MAX = 255  # bytes in one path component (Linux), and S3's limit is 1024 per key
_PATH_MAX = 4096
_S3_KEY_MAX = 1024


def _check_length(target: str, path: str, whole_max: int) -> None:
    """A target whose own path, or one of its names, is too long for what goes
    inside it is refused before anything is made (else: ENAMETOOLONG later)."""
    data = os.fsencode(path)
    if len(data) > whole_max - _INSIDE or any(len(p) > _NAME_MAX for p in data.split(b"/")):
        shown = target if len(target) <= 80 else target[:80] + "…"
        raise InvalidArgument(
            f"backup target '{shown}' is too long: at most {whole_max - _INSIDE} bytes, "
            f"and {_NAME_MAX} per name"
        )


def _check_not_in_data_dir(target: str, real: str, data_dir: str | None) -> None:
    """A target in the server's own folders (catalog/, files/, tmp/, …) is
    refused whatever the roots say (a root holding the data directory, "/"):
    the server's start-up would take its backups for strays, or its backups
    would write among the server's files. `<data_dir>/backups`, the default
    root, is the one place in the data directory backups may go."""
    if data_dir is None:
        return
    home = _real_root(data_dir)  # resolved once a process, as the roots are
    if _inside(real, home) and not _inside(real, os.path.join(home, "backups")):
        raise PermissionDenied(
            f"backup target '{target}' is not allowed: it is inside the server's data "
            f"directory, where only its backups/ folder may hold backups")


def _local(target: str, roots: list[str], data_dir: str | None = None) -> Target:
    if ".." in target.split("/"):
        raise PermissionDenied(f"backup target '{target}' is not allowed: '..' is not permitted")
    if not roots:
        raise PermissionDenied(
            f"backup target '{target}' is not allowed: no backup roots are configured"
        )
    root_abs = [os.path.abspath(r) for r in roots]
    # One stat a root where it is there (makedirs: three): what it is now,
    # for _below_root. A root that is a file, or cannot be made, fails only
    # the targets in it (it failed every backup statement, 500 INTERNAL).
    found: dict[str, tuple[int, int]] = {}
    broken: dict[str, CairnError] = {}
    for root in root_abs:
        try:
            found[root] = _dir_id(root)
        except OSError as exc:
            broken[_real_root(root)] = broken[root] = _root_failed(root, exc)
    root_real = [_real_root(r) for r in root_abs]

    if os.path.isabs(target):
        # normpath keeps a leading '//' (POSIX); on Linux it is '/': '//' was
        # not the root '/' itself but a target in it, based at '/.'.
        candidate = "/" + os.path.normpath(target).lstrip("/")
        if not any(_inside(candidate, r) for r in root_abs + root_real):
            raise PermissionDenied(f"backup target '{target}' is outside the backup roots")
    else:
        candidate = os.path.normpath(os.path.join(root_abs[0], target))
    for root, error in broken.items():
        if _inside(candidate, root):
            raise error
    _check_length(target, candidate, _PATH_MAX)

    # Symlinks anywhere on the way (the target itself, a parent) are resolved
    # before the check, so a link inside a root cannot point outside it.
    real, there = _below_root(candidate, root_abs, root_real, found, target)
    _check_not_in_data_dir(target, real, data_dir)
    for root, error in broken.items():
        if _inside(real, root):
            raise error
    if not any(_inside(real, r) for r in root_real):
        raise PermissionDenied(f"backup target '{target}' resolves outside the backup roots")
    if real in root_real:
        raise InvalidArgument(
            f"backup target '{target}' is a backup root itself; name a directory inside it"
        )
    _check_not_nested(target, real, next(r for r in root_real if _inside(real, r)))
    # An archive name that is an existing directory stays a directory repository
    # (such names meant nothing before archives existed).
    if there is _UNKNOWN:
        there = _lstat(real)
        if there is not None and (why := others_hold(there)) is not None:
            raise refuse_foreign(target, real, why)
    if there is None:
        file_on_way(target, real)  # not "File exists" from the job: the file named
    is_dir = there is not None and stat.S_ISDIR(there.st_mode)
    if there is not None and is_dir and there.st_mode & stat.S_IWOTH:
        # A shared sticky folder (/tmp) is a fine way, not a target: another
        # user may make its manifests/ and objects/ (and config.json) first.
        raise refuse_foreign(
            target, real, f"can be written by any user (mode {stat.S_IMODE(there.st_mode):04o}), "
            f"who may make its folders first (name a folder inside it)")
    if is_archive_name(real) and not is_dir:
        if there is not None and not stat.S_ISREG(there.st_mode):
            raise InvalidArgument(f"backup target '{target}' is not a regular file")
        return Target(fs=pafs.LocalFileSystem(), base=real, uri=real, kind="archive")
    if there is not None and not is_dir:
        raise InvalidArgument(f"backup target '{target}' is not a directory")
    return Target(fs=no_follow_fs(real, real), base=real, uri=real, kind="local")


_UNKNOWN = os.stat_result((0,) * 10)  # _below_root did not lstat the path itself


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (OSError, ValueError):
        return None


def _dir_id(root: str) -> tuple[int, int]:
    """A root's (device, inode), made first if it is not there. Made again
    after this process found it is a WARNING: a root that went while the
    server ran (an unmounted mount point's folder removed) took the next
    backups on the disk below it without a word."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        st = None
    if st is None or not stat.S_ISDIR(st.st_mode):
        os.makedirs(root, 0o700, exist_ok=True)  # raises where a file is in the way
        st = os.stat(root)
        if root in _SEEN:
            log.warning("backup root '%s' is gone since the server first found it: made it "
                        "again, empty (if it is a mount point, backups now go to the disk "
                        "below it)", root)
        else:
            log.info("backup root '%s' was not there: made it", root)
    if (why := others_hold(st)) is not None:
        raise ForeignRoot(errno.EPERM, f"it {why}")
    _SEEN.add(root)
    return st.st_dev, st.st_ino


_SEEN: set[str] = set()  # roots this process has found (or made)


class ForeignRoot(PermissionError):
    """A backup root of another user's."""


def _root_failed(root: str, exc: OSError) -> CairnError:
    """A backup root that is not a folder, or cannot be made: PERMISSION_DENIED
    when the system refuses (a read-only parent), INVALID_ARGUMENT otherwise,
    naming the root."""
    if isinstance(exc, ForeignRoot):
        return PermissionDenied(
            f"backup root '{root}' is not allowed: {exc.strerror}: another user could remove "
            f"its backups or put others in their place; make it the server's user's alone")
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return InvalidArgument(f"backup root '{root}' is not a directory (a file is in the way)")
    message = f"backup root '{root}' cannot be created: {describe(exc)}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(message)
    return InvalidArgument(message)


def _below_root(candidate: str, root_abs: list[str], root_real: list[str],
                found: dict[str, tuple[int, int]],
                target: str) -> tuple[str, os.stat_result | None]:
    """`os.path.realpath(candidate)`, and the lstat of what it names (None:
    nothing there; `_UNKNOWN`: not asked).

    Under a root whose path has no link in it (it is its resolved self) and
    that is the same directory as when first resolved (its parents re-linked
    since, it is not), only the names below the root are resolved, an lstat
    each: realpath's lstat of every name from `/` was most of a target's
    system calls, each on a server thread a take of the GIL beside the
    statements on the event loop (bench/gil_takes.py). A link found below
    the root, or any other root, takes realpath. A folder on the way of another
    user's, or that any user may write to, is PERMISSION_DENIED (owners.py)."""
    for abs_root, real_root in zip(root_abs, root_real, strict=True):
        if (abs_root != real_root or not _inside(candidate, abs_root) or candidate == abs_root
                or abs_root not in found or found[abs_root] != _first_id(real_root, found[abs_root])):
            continue
        names = os.path.relpath(candidate, abs_root).split(os.sep)
        path, st = real_root, None
        for i, name in enumerate(names):
            path = os.path.join(path, name)
            st = _lstat(path)
            if st is None:  # not there (realpath keeps the rest as written)
                return os.path.join(path, *names[i + 1:]), None
            if (why := others_hold(st)) is not None:  # the way is another's to change
                raise refuse_foreign(target, path, why)  # a link too: they point it
            if stat.S_ISLNK(st.st_mode):
                return os.path.realpath(candidate), _UNKNOWN
        return path, st
    return os.path.realpath(candidate), _UNKNOWN


_FIRST: dict[str, tuple[int, int]] = {}


def _first_id(real_root: str, now: tuple[int, int]) -> tuple[int, int]:
    """The (device, inode) a root had when this process first resolved it."""
    return _FIRST.setdefault(real_root, now)


def _is_repository(path: str) -> bool:
    """Whether a local directory is (or holds the remains of) a backup repository."""
    return os.path.isfile(os.path.join(path, CONFIG)) or any(
        os.path.isdir(os.path.join(path, d)) for d in (MANIFESTS, OBJECTS, KEYS)
    )


@functools.lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    """A backup root with its links resolved, once a process: every statement
    naming a target asked again (an lstat per component), and each system
    call on a server thread can keep the event loop waiting for the GIL
    (docs/performance.md). A root re-linked elsewhere later is not followed:
    targets stay confined to where the root was first found."""
    return os.path.realpath(root)


def _check_not_nested(target: str, real: str, root: str) -> None:
    """A target may not lie in another repository's internal folders (its
    clean-up, prune and listings would meet the other's files, and the other's
    would meet this one's), nor hold a repository in its own.

    The second is asked only of a target that is not a repository yet (no
    `config.json`), as `refuse_nested_remote` asks it of an S3 target: once
    this one is, the first rule refuses every target inside its internal
    folders, so no repository comes to be there through Cairn. Asked every
    time, it was ~30 stats a BACKUP (an lstat of each internal folder, four
    stats in each), each a take of the GIL beside the statements on the
    event loop (bench/gil_takes.py)."""
    rel = os.path.relpath(real, root).split(os.sep)
    for depth in range(1, len(rel)):
        above = os.path.join(root, *rel[:depth])
        if rel[depth] in INTERNAL and _is_repository(above):
            raise PermissionDenied(
                f"backup target '{target}' lies inside the internal folder "
                f"'{rel[depth]}' of backup repository '{above}'"
            )
    if _regular_file(os.path.join(real, CONFIG)):
        return
    for name in INTERNAL:
        inner = os.path.join(real, name)
        if _real_dir(inner) and _is_repository(inner):
            raise PermissionDenied(
                f"backup target '{target}' holds another backup repository in its "
                f"internal folder '{name}'"
            )


def _regular_file(path: str) -> bool:
    """A regular file, not a link to one (one lstat)."""
    st = _lstat(path)
    return st is not None and stat.S_ISREG(st.st_mode)


def _real_dir(path: str) -> bool:
    """A directory, not a link to one: one lstat (`isdir` and `islink` were two,
    and each system call on a server thread can keep the event loop waiting
    for the GIL: docs/performance.md)."""
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def refuse_nested(target: Target) -> None:
    """The nesting rule asked again of a target whose `config.json` was just
    written: two servers creating `<root>/n0` and `<root>/n0/locks` at one
    moment each passed it before either config existed. A local target's
    folders above it (to the top) and internal folders are looked at; an S3
    target's prefixes as `refuse_nested_remote`."""
    if target.kind != "local":
        refuse_nested_remote(target)
        return
    real = target.base
    parts = real.strip(os.sep).split(os.sep)
    for depth in range(1, len(parts)):
        above = os.sep + os.path.join(*parts[:depth])
        if parts[depth] in INTERNAL and _is_repository(above):
            raise PermissionDenied(
                f"backup target '{real}' lies inside the internal folder "
                f"'{parts[depth]}' of backup repository '{above}'")
    for name in INTERNAL:
        inner = os.path.join(real, name)
        if _real_dir(inner) and _is_repository(inner):
            raise PermissionDenied(f"backup target '{real}' holds another backup repository "
                                   f"in its internal folder '{name}'")


def refuse_nested_remote(target: Target) -> None:
    """The same rule as `_check_not_nested`, for an object-storage target about to
    become a repository: asked once, when its `config.json` is first written (it
    costs a request per prefix level), which covers both orders of creation: the
    second repository made is the one refused."""
    if target.kind != "s3":
        return
    bucket, _, prefix = target.base.partition("/")
    parts = prefix.split("/") if prefix else []

    def holds_config(path: str) -> bool:
        info = target.fs.get_file_info(f"{path}/{CONFIG}")
        return bool(info.type == pafs.FileType.File)

    for depth in range(len(parts)):
        above = "/".join([bucket, *parts[:depth]])
        if parts[depth] in INTERNAL and holds_config(above):
            raise PermissionDenied(
                f"backup target '{target.uri}' lies inside the internal folder "
                f"'{parts[depth]}' of backup repository 's3://{above}'"
            )
    for name in INTERNAL:
        if name != CONFIG and holds_config(f"{target.base}/{name}"):
            raise PermissionDenied(
                f"backup target '{target.uri}' holds another backup repository in its "
                f"internal folder '{name}'"
            )


def is_archive_name(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


# --- S3 ----------------------------------------------------------------------------


def _split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b/` -> ("bucket", "a/b"), refusing anything ambiguous."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "s3" or not parts.netloc:
        raise InvalidArgument(f"backup target '{uri}' is not a valid s3://bucket/prefix URI")
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise InvalidArgument(f"backup target '{uri}' must not have a query or fragment")
    bucket = parts.netloc
    if "@" in bucket or ":" in bucket:
        raise InvalidArgument(
            f"backup target '{uri}': put credentials in [backup.targets], not the URI"
        )
    prefix = parts.path.strip("/")
    components = prefix.split("/") if prefix else []
    if any(c in ("", ".", "..") for c in components):
        raise InvalidArgument(f"backup target '{uri}' has an empty, '.' or '..' path component")
    _check_length(uri, prefix, _S3_KEY_MAX)
    if is_archive_name(prefix):
        raise InvalidArgument(
            f"backup target '{uri}': archives (.tar, .tar.zst) are local files; "
            "object storage holds repositories"
        )
    return bucket, prefix


def _s3_uri(uri: str, named: dict[str, dict[str, Any]]) -> Target:
    bucket, prefix = _split_s3(uri)
    for config in named.values():
        configured = str(config.get("uri", ""))
        if configured.lower().startswith("s3://") and _split_s3(configured)[0] == bucket:
            return _make_s3(bucket, prefix, config)
    return _make_s3(bucket, prefix, {})


def _named_s3(name: str, config: dict[str, Any]) -> Target:
    uri = str(config.get("uri", ""))
    if not uri.lower().startswith("s3://"):
        raise InvalidArgument(f"backup target '{name}' is configured with a uri that is not s3://…")
    bucket, prefix = _split_s3(uri)
    return _make_s3(bucket, prefix, config)


def s3_key(target: str, named: dict[str, dict[str, Any]]) -> str | None:
    """The object store (endpoint and bucket) `target` names; None for a
    local target, or one that does not resolve (resolving says why)."""
    try:
        if target in named:
            config = named[target]
            bucket = _split_s3(str(config.get("uri", "")))[0]
        elif target.lower().startswith("s3://"):
            bucket = _split_s3(target)[0]
            config = next((c for c in named.values()
                           if str(c.get("uri", "")).lower().startswith("s3://")
                           and _split_s3(str(c["uri"]))[0] == bucket), {})
        else:
            return None
    except CairnError:
        return None
    return f"{config.get('endpoint') or 'aws'}/{bucket}"


def s3_options(config: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `S3FileSystem` from a `[backup.targets.NAME]` table."""
    options: dict[str, Any] = {}
    if config.get("access_key"):
        options["access_key"] = str(config["access_key"])
        options["secret_key"] = str(config.get("secret_key", ""))
    if config.get("region"):
        options["region"] = str(config["region"])
    endpoint = str(config.get("endpoint") or "")
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if split.scheme not in ("http", "https") or not split.netloc:
            raise InvalidArgument(f"backup target endpoint '{endpoint}' is not an http(s) URL")
        options["scheme"] = split.scheme
        options["endpoint_override"] = split.netloc
    return options


def _make_s3(bucket: str, prefix: str, config: dict[str, Any]) -> Target:
    fs = new_s3_filesystem(s3_options(config))
    base = f"{bucket}/{prefix}" if prefix else bucket
    return Target(fs=fs, base=base, uri=f"s3://{base}", kind="s3")
