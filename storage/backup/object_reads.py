"""Reading objects back, checked: the half of ObjectStore that never trusts what
it reads (sizes before a byte is read, sha256 and every encrypted frame after)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from functools import partial
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.fs as pafs

from catalog.diskerrors import DataDirUnavailable
from catalog.errors import (
    BackupInvalid,
    CairnError,
    Cancelled,
    PermissionDenied,
    Unavailable,
)

from . import copier
from .codec import RAW, ZSTD, Form, Found, decode, identify
from .contents import Teed
from .crypto import Keys
from .fastcopy import copy_file
from .layout import check_oid
from .nofollow import NoFollowHandler, handler_of
from .oserrors import read_failed, reading
from .targets import Target
from .transfer import OnBytes, ShouldStop, copy
from .zstd_walk import most_blocks, whole

_LOCAL_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


class ObjectReads:
    """Mixed into ObjectStore, which provides the target, the keys and the lookups."""

    target: Target
    keyring: list[Keys]

    def path(self, oid: str) -> str:
        raise NotImplementedError

    def size_of(self, oid: str) -> int | None:
        raise NotImplementedError

    def open(self, oid: str) -> pa.NativeFile:
        """A sequential stream of the object's stored bytes. The caller gets no
        checksum check; use `read_to` or `check` when integrity matters."""
        path = self.path(oid)
        try:
            with reading(self.target.uri, f"object {oid}"):
                return self.target.fs.open_input_stream(path)
        except BackupInvalid as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                raise BackupInvalid(f"object {oid} is missing") from exc
            raise

    def form(self, oid: str, sha256: str | None) -> Form:
        """How object `oid` holds content `sha256` (None: the oid is the sha256)."""
        if sha256 is None or sha256 == oid:
            return Form(oid, RAW, None)
        check_oid(sha256)
        found = identify(oid, sha256, self.keyring)
        if found is None:
            raise BackupInvalid(
                f"object {oid} does not hold content {sha256} under any key at hand"
            )
        return found

    def open_local(self, oid: str) -> BinaryIO:
        """A raw object of a local target, opened for reading at any offset
        (no link followed on the way, as every read in a target)."""
        handler = handler_of(self.target.fs)
        if handler is None:
            raise BackupInvalid(f"object {oid} is not in a local target")
        with reading(self.target.uri, f"object {oid}"):
            fd = handler.open_fd(self.path(oid), os.O_RDONLY)
        return os.fdopen(fd, "rb")

    def sizes(self, oids: list[str]) -> dict[str, int]:
        """`size_of` of each of `oids` present, in one look-up."""
        with reading(self.target.uri, f"object {oids[0]}" if len(oids) == 1 else ""):
            infos = self.target.fs.get_file_info([self.path(o) for o in oids])
        return {o: i.size for o, i in zip(oids, infos, strict=True) if i.type == pafs.FileType.File}

    def size_served(self, oid: str) -> int | None:
        """`size_of` of an object about to be reused. On object storage a look-up
        is a HEAD, and a store answering one with the right size for an object it
        no longer held let a BACKUP reuse it and say `completed`, its RESTORE then
        failing with the object missing. So its last byte is read too (a ranged
        GET): one not served now is None, stored again (the same bytes, checked)."""
        if self.target.kind != "s3":
            return self.size_of(oid)
        with reading(self.target.uri, f"object {oid}"):
            try:
                f = self.target.fs.open_input_file(self.path(oid))  # the HEAD
            except FileNotFoundError:
                return None
        with f:
            try:
                stored = f.size()
                return stored if stored == 0 or len(f.read_at(1, stored - 1)) == 1 else None
            except OSError:
                return None

    def found_among(self, contents: list[tuple[str, int | None]],
                    candidates: list[list[Form]]) -> list[Found]:
        """For each (sha256, plain size), the first of its `candidates` forms
        stored and holding it (`holds`), in one look-up of every name and one
        pass over the zstd ones' headers (each directory opened once)."""
        stored = self.sizes([f.oid for fs in candidates for f in fs])
        found: list[Found] = []
        for (_, plain), fs in zip(contents, candidates, strict=True):
            found.append(next(((f, stored[f.oid]) for f in fs if f.oid in stored
                               and f.stored_size(plain) in (None, stored[f.oid])), None))
        unsure = [(i, hit) for i, hit in enumerate(found) if hit is not None
                  and hit[0].encoding == ZSTD]
        walked = self.zstd_whole([(*hit, contents[i][1]) for i, hit in unsure])
        for (i, (form, size)), ends in zip(unsure, walked, strict=True):
            if not (ends if ends is not None else self.holds(form, size, *contents[i])):
                found[i] = None  # damaged: stored again
        return found

    def holds(self, form: Form, stored: int, sha256: str, plain_size: int | None) -> bool:
        """Whether a found object holds the content: by its size where that
        follows from the content's, else (zstd) by its headers (`zstd_whole`,
        a local target) or reread and checked as VERIFY does."""
        expected = form.stored_size(plain_size)
        if expected is not None or form.encoding != ZSTD:
            return expected is None or stored == expected  # raw of an unknown size: any
        (headers,) = self.zstd_whole([(form, stored, plain_size)])
        if headers is not None:
            return headers
        try:
            return self.check(form.oid, stored, sha256=sha256, plain_size=plain_size) is None
        except Unavailable:
            return False  # not read now: stored again, as a damaged one is

    def holds_now(self, form: Form, sha256: str, plain_size: int | None) -> bool:
        """Whether the object is there and holds the content (`holds`)."""
        stored = self.size_of(form.oid)
        return stored is not None and self.holds(form, stored, sha256, plain_size)

    def zstd_whole(self, objects: list[tuple[Form, int, int | None]]) -> list[bool | None]:
        """For each (form, stored size, plain size): whether an unencrypted zstd
        object of a local target ends where its size says, from its headers
        (zstd_walk.py); None for any other (encrypted, S3)."""
        handler = handler_of(self.target.fs)
        if handler is None:
            return [None] * len(objects)
        plain = [f.encoding == ZSTD and f.keys is None for f, _, _ in objects]
        walk = [(f.oid, size, most_blocks(content, size))
                for (f, size, content), ok in zip(objects, plain, strict=True) if ok]
        with reading(self.target.uri):
            ends = iter(handler.each_fd(
                [self.path(oid) for oid, _, _ in walk],
                lambda i, fd: whole(lambda pos, n: os.pread(fd, n, pos), *walk[i][1:])))
        return [next(ends) if ok else None for ok in plain]

    def read_to(
        self,
        oid: str,
        local_path: str,
        expected_size: int,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
        sha256: str | None = None,
        stored_size: int | None = None,
    ) -> None:
        """Copy an object's content to a local file, checking its size and sha256
        (`sha256` of the content when the object is encoded, else its oid); on any
        failure the partial local file is removed and BackupInvalid (or Cancelled)
        raised. `on_bytes` counts content bytes. `stored_size` (the manifest's)
        is checked first where the content's size does not tell it (zstd): a
        truncated object is "size 1082, expected 1092" as VERIFY BACKUP says,
        not the size of what its cut stream decoded to ("size 0, expected 2329")."""
        form = self.form(oid, sha256)
        want = form.stored_size(expected_size)
        self._stat_or_raise(oid, want if want is not None else stored_size)
        read_error = partial(read_failed, self.target.uri, what=f"object {oid}")
        created = False
        handler = handler_of(self.target.fs)
        try:
            if handler is not None and form.encoding == RAW and form.keys is None:
                created = True
                n, actual = self._read_by_fd(handler, oid, local_path, on_bytes, should_stop)
                _check_content(oid, n, expected_size, actual, sha256 or oid)
                return
            src = self.open(oid)
            with src, open(local_path, "wb") as dst:
                created = True
                digest = hashlib.sha256()
                if form.encoding == RAW and form.keys is None:
                    n = copy(src, dst, digest, on_bytes, should_stop, read_error=read_error)
                else:
                    n = 0
                    for chunk in decode(src, form, f"object {oid}", None, should_stop, read_error):
                        n += len(chunk)
                        if n > expected_size:
                            break
                        digest.update(chunk)
                        dst.write(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
            _check_content(oid, n, expected_size, digest.hexdigest(), sha256 or oid)
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(local_path)
            raise

    def _read_by_fd(self, handler: NoFollowHandler, oid: str, local_path: str,
                        on_bytes: OnBytes | None, should_stop: ShouldStop | None) -> tuple[int, str]:
        """A raw object of a local target copied to `local_path` through two fds,
        hashed as it is written (fastcopy.py): (bytes, sha256)."""
        uri = self.target.uri
        with reading(uri, f"object {oid}"):
            src = handler.open_fd(self.path(oid), os.O_RDONLY)
        try:
            dst = os.open(local_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                def error(exc: OSError) -> BaseException:
                    # The local side's own failures (a full disk) stay what they are.
                    return exc if exc.errno in _LOCAL_ERRORS else read_failed(
                        uri, exc, what=f"object {oid}")

                # Through the page cache, as `cp` writes; install fsyncs each file.
                return copy_file(src, dst, on_bytes, should_stop, error)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def check(
        self,
        oid: str,
        expected_size: int,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
        sha256: str | None = None,
        plain_size: int | None = None,
        tail: Any = None,
    ) -> str | None:
        """Reread an object; None when it is intact, else what is wrong with it.
        `expected_size` is the stored size; `on_bytes` counts stored bytes read;
        `tail` (contents.Tail) is fed the content. A target that cannot be
        reached now (an object store's 503 SlowDown, a connection cut, a
        timeout) raises Unavailable: that is no damage of the object, and
        VERIFY called an intact backup invalid while a RESTORE of it at the
        same moment was UNAVAILABLE, to be run again."""
        try:
            self._stat_or_raise(oid, expected_size)
            if self._check_by_fd(oid, expected_size, on_bytes, should_stop, sha256, tail):
                return None
            with self.open(oid) as src:
                self.check_stream(src, oid, expected_size, on_bytes, should_stop, sha256,
                                  plain_size, tail)
        except (Cancelled, PermissionDenied, DataDirUnavailable, Unavailable):
            raise  # a cancel, a link inside the target, too many open files here,
            # or a target not answering now (the object may be sound): not damage
        except CairnError as exc:
            return exc.message
        return None

    def _check_by_fd(self, oid: str, expected_size: int, on_bytes: OnBytes | None,
                     should_stop: ShouldStop | None, sha256: str | None, tail: Any) -> bool:
        """A raw object of a local target read and hashed in a copier process
        (copier.check), its content's last `tail.limit` bytes fed to `tail`; False
        when it cannot run there (the caller reads it on this thread)."""
        handler = handler_of(self.target.fs)
        form = self.form(oid, sha256)
        if handler is None or form.encoding != RAW or form.keys is not None:
            return False
        uri = self.target.uri
        with reading(uri, f"object {oid}"):
            src = handler.open_fd(self.path(oid), os.O_RDONLY)
        try:
            done = copier.check(src, 0 if tail is None else tail.limit, on_bytes, should_stop,
                                partial(read_failed, uri, what=f"object {oid}"))
        finally:
            os.close(src)
        if done is None:
            return False
        n, actual, last = done
        if tail is not None:
            tail.take(last)
        _check_content(oid, n, expected_size, actual, oid)
        return True

    def check_stream(
        self,
        src: Any,
        oid: str,
        expected_size: int,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
        sha256: str | None = None,
        plain_size: int | None = None,
        tail: Any = None,
    ) -> None:
        """Read an object's stored bytes from `src` to the end and check them all;
        BackupInvalid says what is wrong. `tail` (contents.Tail) is fed the content."""
        read_error = partial(read_failed, self.target.uri, what=f"object {oid}")
        form = self.form(oid, sha256)
        digest: Any = hashlib.sha256() if tail is None else Teed(hashlib.sha256(), tail)
        if form.encoding == RAW and form.keys is None:
            n = copy(src, None, digest, on_bytes, should_stop, read_error=read_error)
            _check_content(oid, n, expected_size, digest.hexdigest(), oid)
            return
        stored = 0

        def counted(k: int) -> None:
            nonlocal stored
            stored += k
            if on_bytes is not None:
                on_bytes(k)

        n = 0
        for chunk in decode(src, form, f"object {oid}", counted, should_stop, read_error):
            n += len(chunk)
            if plain_size is not None and n > plain_size:
                raise BackupInvalid(f"object {oid} is corrupt: content larger than {plain_size}")
            digest.update(chunk)
        if stored != expected_size:
            raise BackupInvalid(f"object {oid} is corrupt: size {stored}, expected {expected_size}")
        _check_content(oid, n, n if plain_size is None else plain_size, digest.hexdigest(),
                       sha256 or oid)

    def _stat_or_raise(self, oid: str, expected_size: int | None) -> None:
        actual = self.size_of(oid)
        if actual is None:
            raise BackupInvalid(f"object {oid} is missing")
        if expected_size is not None and actual != expected_size:
            raise BackupInvalid(f"object {oid} is corrupt: size {actual}, expected {expected_size}")



def _check_content(oid: str, n: int, expected_size: int, actual: str, expected: str) -> None:
    if n != expected_size:
        raise BackupInvalid(f"object {oid} is corrupt: size {n}, expected {expected_size}")
    if actual != expected:
        raise BackupInvalid(f"object {oid} is corrupt: sha256 mismatch")
