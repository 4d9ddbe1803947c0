"""Tar streams for archives: writing one deterministically, reading one warily.

Writing: members in sorted order, regular files only, mtime 0, uid/gid 0, empty
owner names, mode 0o644, PAX format (long names need it; nothing else varies),
optionally through one zstd stream. The same repository always packs to the
same bytes.

Reading: members come straight from the (decompressed) stream, never extracted
by tarfile. A member must be a regular file (or a directory, which is skipped)
with a relative name of the repository layout, in strictly increasing order;
anything else (absolute paths, `..`, links, devices, unknown names) is refused."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import tarfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import zstandard

from catalog.errors import AlreadyExists, BackupInvalid, CairnError

from . import records
from .atomic import fsync_path
from .layout import CONFIG, KEYS, LOCKS, MANIFESTS, OBJECTS, TMP, process_tag
from .nofollow import refuse_link
from .oserrors import writing
from .transfer import CHUNK_SIZE
from .way import make_way

ZSTD_LEVEL = 3
_MEMBER = re.compile(
    r"^(config\.json"
    r"|keys/[0-9a-f]{32}\.json"
    r"|manifests/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.json"
    r"|objects/([0-9a-f]{2})/([0-9a-f]{64}))\Z"
)
PACKED = (CONFIG, KEYS, MANIFESTS, OBJECTS)  # locks/ and tmp/ never go into an archive


def is_zst(path: str) -> bool:
    return path.lower().endswith(".tar.zst")


def packable(base: str) -> list[str]:
    """Relative names of the files of a local repository that an archive holds, sorted."""
    names = []
    for top in PACKED:
        path = os.path.join(base, top)
        if os.path.isfile(path):
            names.append(top)
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                names.append(os.path.relpath(os.path.join(dirpath, f), base).replace(os.sep, "/"))
    assert not any(n.startswith((LOCKS + "/", TMP + "/")) for n in names)
    return sorted(names)


def pack(base: str, archive: str, durable: bool = True) -> None:
    """Write the repository at `base` as the archive `archive`: to a temp file
    beside it, fsynced, then linked into place, so the archive appears whole or
    not at all. An existing archive is ALREADY_EXISTS."""
    parent = os.path.dirname(archive)
    tmp = os.path.join(parent, f".{os.path.basename(archive)}.{process_tag()}{secrets.token_hex(4)}.tmp")
    with writing(archive):
        make_way(parent, archive)  # 0700, each folder found looked at again (way.py)
        try:
            # 0600 whatever the umask: the archive is a whole backup (its rows).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            with open(fd, "wb") as raw:
                write_tar(base, raw, is_zst(archive))
                if durable:
                    raw.flush()
                    os.fsync(raw.fileno())
            try:
                os.link(tmp, archive)  # a rename that never replaces
            except FileExistsError:
                raise AlreadyExists(f"backup archive '{archive}' already exists") from None
            if durable:
                fsync_path(parent)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_tar(base: str, out: BinaryIO, zst: bool) -> None:
    sink: Any = out
    compressor = None
    if zst:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
        sink = compressor.stream_writer(out, closefd=False)
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in packable(base):
            path = os.path.join(base, name)
            info = tarfile.TarInfo(name)
            info.size = os.path.getsize(path)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
    if compressor is not None:
        sink.close()


# --- reading -------------------------------------------------------------------------


@contextlib.contextmanager
def archive_errors(archive: str) -> Iterator[None]:
    """What a damaged archive raises, as BACKUP_INVALID naming the archive."""
    try:
        yield
    except CairnError:
        raise
    except FileNotFoundError:
        raise BackupInvalid(f"backup archive '{archive}' does not exist") from None
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError, ValueError) as exc:
        raise BackupInvalid(f"backup archive '{archive}' is corrupt: {exc}") from exc


# The most a PAX or GNU long-name header may hold. Cairn's own are a name of
# the layout (under 200 bytes); tarfile reads any header whole, and scans it,
# before a member can be checked: one announcing 1.5 GB of zeros (50 KB as
# .tar.zst, 16 KB as a sparse .tar) took the server to 4.7 GB.
MAX_HEADER_BYTES = 64 << 10


class _BoundedInfo(tarfile.TarInfo):
    """A member header whose extended header (PAX, GNU long name or link)
    announcing more than MAX_HEADER_BYTES is refused before it is read."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                         tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK) \
                and self.size > MAX_HEADER_BYTES:
            # ReadError, not a HeaderError: tarfile takes an invalid header
            # past the first member for the end of the archive.
            raise tarfile.ReadError(
                f"a member's extended header announces {self.size} bytes "
                f"(at most {MAX_HEADER_BYTES})")
        return super()._proc_member(tarfile_)  # type: ignore[misc, no-any-return]


class Reader:
    """One pass over an archive's members. `seekable` opens a plain `.tar` so that
    members can also be read later, in any order (tarfile seeks over data)."""

    def __init__(self, archive: str, seekable: bool = False) -> None:
        self.archive = archive
        # The archive itself is never reached through a link (see nofollow.py).
        with archive_errors(archive):
            try:
                fd = os.open(archive, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise refuse_link(archive, os.path.basename(archive)) from None
                raise
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO would wait for a writer
                os.close(fd)
                raise BackupInvalid(f"backup archive '{archive}' is not a regular file")
            os.set_blocking(fd, True)
        self._raw = open(fd, "rb")  # noqa: SIM115 - closed by close()
        try:
            with archive_errors(archive):
                if is_zst(archive):
                    stream = zstandard.ZstdDecompressor().stream_reader(
                        self._raw, read_size=CHUNK_SIZE
                    )
                    self.tar = tarfile.open(  # noqa: SIM115
                        fileobj=stream, mode="r|", tarinfo=_BoundedInfo)
                elif seekable:
                    self.tar = tarfile.open(  # noqa: SIM115
                        fileobj=self._raw, mode="r:", tarinfo=_BoundedInfo)
                else:
                    self.tar = tarfile.open(  # noqa: SIM115
                        fileobj=self._raw, mode="r|", tarinfo=_BoundedInfo)
        except BaseException:
            self._raw.close()
            raise

    def members(self) -> Iterator[tuple[str, tarfile.TarInfo]]:
        """(name, member) of every file, checked; a directory entry is skipped."""
        previous = ""
        with archive_errors(self.archive):
            for member in self.tar:
                name = self._check(member, previous)
                previous = name
                if not member.isdir():
                    yield name, member

    def _check(self, member: tarfile.TarInfo, previous: str) -> str:
        """The member's name once it is typed (records.member: a regular file or
        a directory entry, a sane size) and known to be a safe name of the
        layout, after the previous one."""
        name = member.name
        where = f"backup archive '{self.archive}'"
        if name.startswith("/") or "\\" in name or any(
            c in ("", ".", "..") for c in name.rstrip("/").split("/")
        ):
            raise BackupInvalid(f"{where} has a member with an unsafe name: {name[:200]!r}")
        typed = records.member(member, self.archive)
        if typed.kind == "dir":
            return name.rstrip("/")
        if not _MEMBER.match(name):
            raise BackupInvalid(f"{where} has an unexpected member {name[:200]!r}")
        if name <= previous:
            raise BackupInvalid(f"{where} is not in sorted order at member {name!r}")
        return name

    def read(self, member: tarfile.TarInfo, limit: int) -> bytes:
        """A small member whole, refusing more than `limit` bytes."""
        if member.size > limit:
            raise BackupInvalid(
                f"backup archive '{self.archive}' member {member.name!r} is too large"
            )
        with archive_errors(self.archive):
            f = self.tar.extractfile(member)
            assert f is not None
            return f.read()

    def open(self, member: tarfile.TarInfo) -> Any:
        with archive_errors(self.archive):
            f = self.tar.extractfile(member)
        assert f is not None
        return f

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.tar.close()
        self._raw.close()


def object_id(name: str) -> str | None:
    """The oid of an `objects/aa/<oid>` member name, else None."""
    match = _MEMBER.match(name)
    if match is None or match.group(3) is None or match.group(2) != match.group(3)[:2]:
        return None
    return match.group(3)
