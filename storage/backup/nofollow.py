"""A local file system, for one target, in which no link is ever followed.

A local target is resolved once (targets.py: symlinks on the way to it are
followed and the result confined to the roots). Inside it, everything is
hostile: a symlink planted for `objects/`, `tmp/` or any file would send reads,
writes or clean-up deletes outside the roots. So every path inside the target
is opened component by component from a descriptor of the target directory,
each with O_NOFOLLOW (`dir_fd`-relative `os.open`, `os.stat(...,
follow_symlinks=False)`, `os.scandir` on a descriptor): a link is met when it is
used, never checked first and used later, and it is refused with
PERMISSION_DENIED naming it. pyarrow sees this as an ordinary file system
(`pyarrow.fs.PyFileSystem`), so the repository code is the same for S3."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

from catalog.errors import BackupInvalid, PermissionDenied

from .way import make_way

T = TypeVar("T")
log = logging.getLogger(__name__)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)
_PROC_FD = os.path.isdir("/proc/self/fd")
_NO_WAIT = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# What a target holds is its owner's alone, whatever the umask: rows (a plain
# backup's objects are the table's Parquet), manifests naming every table. A
# folder made here is 0700 and a file 0600 (they were 0755 and 0644 less the
# umask: any local user read a whole backup, and with umask 000 changed it).
DIR_MODE = 0o700
FILE_MODE = 0o600


def no_follow_fs(base: str, uri: str) -> pafs.FileSystem:
    return pafs.PyFileSystem(NoFollowHandler(base, uri))


def handler_of(fs: pafs.FileSystem) -> NoFollowHandler | None:
    """The no-follow handler behind a local target's file system (None for S3
    and for any other file system, e.g. tests' failing ones)."""
    handler = getattr(fs, "handler", None)
    return handler if isinstance(handler, NoFollowHandler) else None


def refuse_link(uri: str, rel: str) -> PermissionDenied:
    return PermissionDenied(
        f"backup target '{uri}' holds a symbolic link at '{rel}': "
        "links inside a backup target are never followed"
    )


def refuse_special(uri: str, rel: str) -> PermissionDenied:
    """A FIFO, socket or device where a file or folder belongs: opening a FIFO
    for reading waits for a writer that never comes, so it is refused, as a
    link is, wherever it is met."""
    return PermissionDenied(
        f"backup target '{uri}' holds a special file (FIFO, socket or device) at '{rel}': "
        "only regular files and folders belong in a backup target"
    )


def refuse_file(uri: str, rel: str) -> BackupInvalid:
    """A file where a folder of the target belongs (`manifests`, `objects/<aa>`):
    damage, named, never taken for a folder that is not there (an empty
    listing: SHOW BACKUPS IN answered no rows, RESTORE 'no backup')."""
    return BackupInvalid(
        f"backup target '{uri}' holds a file at '{rel}' where a folder belongs"
    )


def is_special(mode: int) -> bool:
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


class NoFollowHandler(pafs.FileSystemHandler):  # type: ignore[misc]
    """Paths are absolute and must lie in `base` (the target directory)."""

    def __init__(self, base: str, uri: str) -> None:
        self.base = base.rstrip("/")
        self.uri = uri
        self._made = False  # make_way was asked of the way to `base` (by this process)

    def __getstate__(self) -> dict[str, str]:
        return {"base": self.base, "uri": self.uri}  # a job process looks at the way itself

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["base"], state["uri"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NoFollowHandler) and other.base == self.base

    def __ne__(self, other: object) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "nofollow"

    def normalize_path(self, path: str) -> str:
        return path

    # --- walking -----------------------------------------------------------------

    def _parts(self, path: str) -> list[str]:
        path = path.rstrip("/")
        if path == self.base:
            return []
        if not path.startswith(self.base + "/"):
            raise PermissionDenied(f"path '{path}' is outside backup target '{self.uri}'")
        parts = path[len(self.base) + 1 :].split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise PermissionDenied(f"path '{path}' in backup target '{self.uri}' is not canonical")
        return parts

    def _open_base(self) -> int:
        try:
            return os.open(self.base, _DIR)
        except OSError as exc:
            self._raise_if_link(exc, None, self.base, "")
            raise

    def _raise_if_link(self, exc: OSError, dir_fd: int | None, name: str, rel: str) -> None:
        """Turn the error of a no-follow open into PERMISSION_DENIED when `name` is a link."""
        if exc.errno not in _LINK_ERRORS:
            return
        with contextlib.suppress(OSError):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise refuse_link(self.uri, rel or ".") from None

    def _raise_if_not_dir(self, exc: OSError, dir_fd: int, name: str, rel: str) -> None:
        """The error of opening the folder `rel` inside the target: a link there
        is PERMISSION_DENIED, and so is a special file; a regular file is
        BACKUP_INVALID (`refuse_file`), each naming it. Otherwise the error stands."""
        self._raise_if_link(exc, dir_fd, name, rel)
        if exc.errno != errno.ENOTDIR:
            return
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return
        if is_special(st.st_mode):
            raise refuse_special(self.uri, rel) from None
        if not stat.S_ISDIR(st.st_mode):
            raise refuse_file(self.uri, rel) from None

    @contextlib.contextmanager
    def _dir(self, parts: list[str], create: bool = False) -> Iterator[int]:
        """A descriptor of the directory `parts` inside the target, reached without
        following a link (and made on the way when `create`)."""
        if create and not self._made:
            # The way was resolved when the statement was accepted (targets.py);
            # the job makes it, looking again at what it finds (way.py).
            make_way(self.base, self.uri)
            self._made = True
        try:
            fd = self._open_base()
        except FileNotFoundError:
            if not create:
                raise
            make_way(self.base, self.uri)  # removed since it was made: made again, looked at
            fd = self._open_base()
        try:
            for i, part in enumerate(parts):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, DIR_MODE, dir_fd=fd)
                try:
                    nxt = os.open(part, _DIR, dir_fd=fd)
                except OSError as exc:
                    self._raise_if_not_dir(exc, fd, part, "/".join(parts[: i + 1]))
                    raise
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def _stat(self, path: str, dirs: _Dirs | None = None) -> os.stat_result | None:
        parts = self._parts(path)
        if not parts:
            fd = self._open_base()
            try:
                return os.fstat(fd)
            finally:
                os.close(fd)
        try:
            if dirs is not None:
                st = os.stat(parts[-1], dir_fd=dirs.fd(tuple(parts[:-1])),
                             follow_symlinks=False)
            else:
                with self._dir(parts[:-1]) as fd:
                    st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        self._refuse_odd(st.st_mode, "/".join(parts))
        return st

    def _refuse_odd(self, mode: int, rel: str) -> None:
        """A link or a special file met at `rel` is refused (403), naming it."""
        if stat.S_ISLNK(mode):
            raise refuse_link(self.uri, rel)
        if is_special(mode):
            raise refuse_special(self.uri, rel)

    def _info(self, path: str, st: os.stat_result | None) -> pafs.FileInfo:
        if st is None:
            return pafs.FileInfo(path, pafs.FileType.NotFound)
        if stat.S_ISDIR(st.st_mode):
            return pafs.FileInfo(path, pafs.FileType.Directory, mtime_ns=st.st_mtime_ns)
        kind = pafs.FileType.File if stat.S_ISREG(st.st_mode) else pafs.FileType.Unknown
        return pafs.FileInfo(path, kind, size=st.st_size, mtime_ns=st.st_mtime_ns)

    # --- FileSystemHandler --------------------------------------------------------

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        if len(paths) < 2:
            return [self._info(p, self._stat(p)) for p in paths]
        # Many at once (a manifest's objects): each directory on the way
        # opened once for all of them, not once a path (4 opens and closes
        # for each object's stat).
        return self._in_order(paths, lambda i, dirs: self._info(paths[i],
                                                                self._stat(paths[i], dirs)))

    def each_fd(self, paths: list[str], fn: Callable[[int, int], T]) -> list[T]:
        """`fn(i, fd)` for each file `paths[i]`, `fd` read-only (opened as
        `open_fd` does, closed after), in one pass that opens each directory on
        the way once, as `get_file_info` does for many paths."""
        def one(i: int, dirs: _Dirs) -> T:
            fd = self.open_fd(paths[i], os.O_RDONLY, dirs)
            try:
                return fn(i, fd)
            finally:
                os.close(fd)

        return self._in_order(paths, one)

    def _in_order(self, paths: list[str], step: Callable[[int, _Dirs], T]) -> list[T]:
        """`step(i, dirs)` for each of `paths`, taken in sorted order so that
        only the current path's directories are open at a time (`_Dirs`);
        the results in the order of `paths`."""
        dirs = _Dirs(self)
        out: dict[int, T] = {}
        try:
            for i in sorted(range(len(paths)), key=paths.__getitem__):
                out[i] = step(i, dirs)
        finally:
            dirs.close()
        return [out[i] for i in range(len(paths))]

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        parts = self._parts(selector.base_dir)
        try:
            with self._dir(parts) as fd:
                return self._list(fd, selector.base_dir.rstrip("/"), parts, selector.recursive)
        except (FileNotFoundError, NotADirectoryError):
            if selector.allow_not_found:
                return []
            raise

    def _list(self, fd: int, path: str, parts: list[str], recursive: bool) -> list[pafs.FileInfo]:
        out: list[pafs.FileInfo] = []
        with os.scandir(fd) as entries:
            listed = sorted(entries, key=lambda e: e.name)
        for entry in listed:
            if not _utf8(entry.name):
                continue  # not Cairn's (listing.py): pyarrow cannot even name it
            rel = [*parts, entry.name]
            st = entry.stat(follow_symlinks=False)
            self._refuse_odd(st.st_mode, "/".join(rel))
            child = f"{path}/{entry.name}"
            out.append(self._info(child, st))
            if recursive and stat.S_ISDIR(st.st_mode):
                try:
                    sub = os.open(entry.name, _DIR, dir_fd=fd)
                except OSError as exc:
                    self._raise_if_not_dir(exc, fd, entry.name, "/".join(rel))
                    raise
                try:
                    out.extend(self._list(sub, child, rel, True))
                finally:
                    os.close(sub)
        return out

    def create_dir(self, path: str, recursive: bool) -> None:
        parts = self._parts(path)
        if recursive:
            with self._dir(parts, create=True):
                return
        with self._dir(parts[:-1]) as fd:
            os.mkdir(parts[-1], DIR_MODE, dir_fd=fd)

    def delete_dir(self, path: str) -> None:
        parts = self._parts(path)
        with self._dir(parts[:-1]) as fd:
            os.rmdir(parts[-1], dir_fd=fd)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        raise NotImplementedError("a backup target never deletes a directory's contents")

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError("a backup target never deletes a directory's contents")

    def delete_file(self, path: str) -> None:
        parts = self._parts(path)
        with self._dir(parts[:-1]) as fd:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise refuse_link(self.uri, "/".join(parts))
            os.unlink(parts[-1], dir_fd=fd)

    def move(self, src: str, dest: str) -> None:
        sparts, dparts = self._parts(src), self._parts(dest)
        with self._dir(sparts[:-1]) as sfd, self._dir(dparts[:-1]) as dfd:
            os.rename(sparts[-1], dparts[-1], src_dir_fd=sfd, dst_dir_fd=dfd)

    def link_new(self, src: str, dest: str) -> bool:
        """Give the file `src` the name `dest` too, unless `dest` exists (False):
        a hard link, where a rename would replace it. The caller removes `src`."""
        sparts, dparts = self._parts(src), self._parts(dest)
        with self._dir(sparts[:-1]) as sfd, self._dir(dparts[:-1]) as dfd:
            try:
                os.link(sparts[-1], dparts[-1], src_dir_fd=sfd, dst_dir_fd=dfd,
                        follow_symlinks=False)
            except FileExistsError:
                return False
        return True

    def copy_file(self, src: str, dest: str) -> None:
        raise NotImplementedError("objects are never copied inside a backup target")

    def open_fd(self, path: str, flags: int, dirs: _Dirs | None = None) -> int:
        """A raw descriptor of a file in the target, opened without following a
        link (for fd-to-fd copies, fastcopy.py), nor waiting on a FIFO (opened
        non-blocking, refused once seen; the flag is then cleared); the caller
        closes it. `dirs`: the directories on the way, held by a batch."""
        parts = self._parts(path)
        rel = "/".join(parts)
        with contextlib.ExitStack() as held:
            fd = (dirs.fd(tuple(parts[:-1])) if dirs is not None
                  else held.enter_context(self._dir(parts[:-1])))
            try:
                handle = os.open(parts[-1], flags | _NO_WAIT, FILE_MODE, dir_fd=fd)
            except OSError as exc:
                self._raise_if_link(exc, fd, parts[-1], rel)
                if exc.errno == errno.ENXIO:  # a FIFO opened to write, no reader
                    raise refuse_special(self.uri, rel) from None
                raise
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            os.close(handle)
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            raise refuse_special(self.uri, rel)
        os.set_blocking(handle, True)
        return handle

    def _open(self, path: str, flags: int, mode: str) -> Any:
        handle = self.open_fd(path, flags)
        try:
            if _PROC_FD:
                # Reopen the very file the descriptor holds (a /proc/self/fd entry
                # names the open file, not a path to resolve again) as a native
                # Arrow file: three times the throughput of a Python file object.
                native = pa.OSFile(f"/proc/self/fd/{handle}", mode)
                os.close(handle)
                return native
            return pa.PythonFile(io.FileIO(handle, mode, closefd=True), mode=mode[0])
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(handle)
            raise

    def open_input_stream(self, path: str) -> Any:
        return self._open(path, os.O_RDONLY, "rb")

    def open_input_file(self, path: str) -> Any:
        return self._open(path, os.O_RDONLY, "rb")

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        return self._open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "wb")

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        raise NotImplementedError("nothing in a backup target is appended to")


class _Dirs:
    """Descriptors of a target's directories while a batch of paths is looked
    up in sorted order, each opened once (without following a link, as
    `NoFollowHandler._dir` does): those of the current path's directory and
    its parents are kept, the rest closed as the batch moves on (a manifest's
    objects span 256 shards, and the descriptors a process may hold are
    few); `close` closes them all."""

    def __init__(self, handler: NoFollowHandler) -> None:
        self._handler = handler
        self._fds: dict[tuple[str, ...], int] = {}

    def fd(self, parts: tuple[str, ...]) -> int:
        fd = self._fds.get(parts)
        if fd is not None:
            return fd
        for gone in [k for k in self._fds if parts[: len(k)] != k]:
            os.close(self._fds.pop(gone))
        if not parts:
            fd = self._handler._open_base()
        else:
            parent = self.fd(parts[:-1])
            try:
                fd = os.open(parts[-1], _DIR, dir_fd=parent)
            except OSError as exc:
                self._handler._raise_if_not_dir(exc, parent, parts[-1], "/".join(parts))
                raise
        self._fds[parts] = fd
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _utf8(name: str) -> bool:
    """Whether a listed name is UTF-8 (os.scandir gives other bytes as surrogates)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        log.warning("a backup target holds a name that is not UTF-8 (not Cairn's: left "
                    "alone): %r", name)
        return False
    return True
