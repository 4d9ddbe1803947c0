"""The content-addressed object store: immutable blobs named by their sha256.

An object is never written twice. When the caller already knows a file's sha256
(Parquet files are immutable and their hash is recorded when they are flushed),
an object that is present with the right size costs one stat and no reading at
all: that is what makes the second backup of an unchanged namespace nearly free.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from catalog.errors import BackupInvalid, CairnError, Cancelled

from .atomic import delete_quietly, make_dirs, publish, write_atomic
from .layout import OBJECTS, TMP, check_oid, is_oid, join, object_path, temp_path
from .oserrors import read_failed, reading, write_failed, writing
from .targets import Target
from .transfer import OnBytes, Readable, ShouldStop, check_stop, copy, hash_file

OnOid = Callable[[str], None]


@dataclass(frozen=True)
class PutResult:
    """`written` is False when the object was already in the target (deduplicated)."""

    oid: str
    size: int
    written: bool


class ObjectStore:
    """Objects of one target. Local writes go through `tmp/` and a rename; S3
    writes go straight to the final key (a PUT is atomic there)."""

    def __init__(self, target: Target, durable: bool = True) -> None:
        self.target = target
        self.durable = durable

    # --- looking ---------------------------------------------------------------

    def path(self, oid: str) -> str:
        return object_path(self.target.base, check_oid(oid))

    def size_of(self, oid: str) -> int | None:
        """The stored size of `oid`, or None when it is absent."""
        with reading(self.target.uri, f"object {oid}"):
            info = self.target.fs.get_file_info(self.path(oid))
        return info.size if info.type == pafs.FileType.File else None

    def has(self, oid: str) -> bool:
        return self.size_of(oid) is not None

    def list(self) -> dict[str, int]:
        """Every object present, with its size (stray files are ignored)."""
        selector = pafs.FileSelector(
            join(self.target.base, OBJECTS), recursive=True, allow_not_found=True
        )
        with reading(self.target.uri):
            infos = self.target.fs.get_file_info(selector)
        found: dict[str, int] = {}
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            parts = info.path.rsplit("/", 2)
            if len(parts) == 3 and is_oid(parts[2]) and parts[1] == parts[2][:2]:
                found[parts[2]] = info.size
        return found

    # --- writing ---------------------------------------------------------------

    def put_file(
        self,
        local_path: str,
        sha256: str | None = None,
        size: int | None = None,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
        on_oid: OnOid | None = None,
    ) -> PutResult:
        """Store a local file. `on_oid` is told the oid before the object is looked
        up or published, so a lock can protect it from a concurrent prune."""
        check_stop(should_stop)
        if sha256 is not None:
            check_oid(sha256)
            if on_oid is not None:
                on_oid(sha256)
            existing = self.size_of(sha256)
            if existing is not None and (size is None or existing == size):
                if on_bytes is not None:
                    on_bytes(existing)
                return PutResult(sha256, existing, False)
        if self.target.kind == "local":
            return self._put_via_temp(local_path, sha256, size, on_bytes, should_stop, on_oid)
        return self._put_direct(local_path, sha256, size, on_bytes, should_stop, on_oid)

    def put_bytes(self, data: bytes, on_oid: OnOid | None = None) -> PutResult:
        """Store a small in-memory blob."""
        oid = hashlib.sha256(data).hexdigest()
        if on_oid is not None:
            on_oid(oid)
        if self.size_of(oid) == len(data):
            return PutResult(oid, len(data), False)
        with writing(self.target.uri):
            make_dirs(self.target, self.path(oid).rsplit("/", 1)[0])
        write_atomic(self.target, self.path(oid), data, self.durable)
        return PutResult(oid, len(data), True)

    def _put_via_temp(
        self,
        local_path: str,
        sha256: str | None,
        size: int | None,
        on_bytes: OnBytes | None,
        should_stop: ShouldStop | None,
        on_oid: OnOid | None,
    ) -> PutResult:
        uri = self.target.uri
        tmp = temp_path(self.target.base)
        digest = hashlib.sha256()
        with open(local_path, "rb", buffering=0) as src:
            with writing(uri):
                make_dirs(self.target, tmp.rsplit("/", 1)[0])
            try:
                n = self._upload(src, tmp, digest, on_bytes, should_stop)
                oid = digest.hexdigest()
                _check_source(local_path, oid, n, sha256, size)
                if on_oid is not None:
                    on_oid(oid)
                if self.size_of(oid) == n:
                    delete_quietly(self.target, tmp)
                    return PutResult(oid, n, False)
                with writing(uri):
                    publish(self.target, tmp, self.path(oid), self.durable)
                return PutResult(oid, n, True)
            except BaseException:
                delete_quietly(self.target, tmp)
                raise

    def _put_direct(
        self,
        local_path: str,
        sha256: str | None,
        size: int | None,
        on_bytes: OnBytes | None,
        should_stop: ShouldStop | None,
        on_oid: OnOid | None,
    ) -> PutResult:
        """Object storage: hash first (local reads are cheap next to the network),
        then skip or PUT straight to the final key. A PUT cut short by an error or a
        cancel still completes (pyarrow closes the upload), so the key is deleted;
        a reader that saw it meanwhile rejects it by size."""
        if sha256 is None:
            sha256, hashed = hash_file(local_path, should_stop)
            _check_source(local_path, sha256, hashed, None, size)
            size = hashed
            if on_oid is not None:
                on_oid(sha256)
            if self.size_of(sha256) == size:
                if on_bytes is not None:
                    on_bytes(size)
                return PutResult(sha256, size, False)
        final = self.path(sha256)
        digest = hashlib.sha256()
        with writing(self.target.uri):
            make_dirs(self.target, final.rsplit("/", 1)[0])
        with open(local_path, "rb", buffering=0) as src:
            try:
                n = self._upload(src, final, digest, on_bytes, should_stop)
                _check_source(local_path, digest.hexdigest(), n, sha256, size)
            except BaseException:
                delete_quietly(self.target, final)
                raise
        return PutResult(sha256, n, True)

    def _upload(
        self,
        src: Readable,
        path: str,
        digest: Any,
        on_bytes: OnBytes | None,
        should_stop: ShouldStop | None,
    ) -> int:
        """Stream `src` into a new file at `path`; target errors become CairnErrors.
        The caller removes `path` if this raises."""
        uri = self.target.uri
        with writing(uri):
            out = self.target.fs.open_output_stream(path)
            try:
                n = copy(
                    src, out, digest, on_bytes, should_stop, write_error=partial(write_failed, uri)
                )
            except BaseException:
                _close_quietly(out)
                raise
            out.close()
        return n

    def delete(self, oid: str) -> None:
        with writing(self.target.uri), contextlib.suppress(FileNotFoundError):
            self.target.fs.delete_file(self.path(oid))

    def remove_tmp(self, older_than_seconds: float | None = None) -> int:
        """Delete leftovers of crashed writes in `tmp/`; returns how many.

        Only safe while no write is running against this target, unless
        `older_than_seconds` spares files that may still be in use."""
        selector = pafs.FileSelector(join(self.target.base, TMP), allow_not_found=True)
        with reading(self.target.uri):
            infos = self.target.fs.get_file_info(selector)
        cutoff = (
            None if older_than_seconds is None else time.time_ns() - int(older_than_seconds * 1e9)
        )
        removed = 0
        with writing(self.target.uri):
            for info in infos:
                if info.type != pafs.FileType.File:
                    continue
                if cutoff is not None and info.mtime_ns is not None and info.mtime_ns > cutoff:
                    continue
                try:
                    self.target.fs.delete_file(info.path)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    # --- reading ---------------------------------------------------------------

    def open(self, oid: str) -> pa.NativeFile:
        """A sequential stream of the object's bytes. The caller gets no checksum
        check; use `read_to` or `check` when integrity matters."""
        path = self.path(oid)
        try:
            with reading(self.target.uri, f"object {oid}"):
                return self.target.fs.open_input_stream(path)
        except BackupInvalid as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                raise BackupInvalid(f"object {oid} is missing") from exc
            raise

    def read_to(
        self,
        oid: str,
        local_path: str,
        expected_size: int,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
    ) -> None:
        """Copy an object to a local file, checking size and sha256; on any failure
        the partial local file is removed and BackupInvalid (or Cancelled) raised."""
        self._stat_or_raise(oid, expected_size)
        created = False
        try:
            src = self.open(oid)
            with src, open(local_path, "wb") as dst:
                created = True
                digest = hashlib.sha256()
                n = copy(
                    src,
                    dst,
                    digest,
                    on_bytes,
                    should_stop,
                    read_error=partial(read_failed, self.target.uri, what=f"object {oid}"),
                )
            _check_object(oid, n, expected_size, digest.hexdigest())
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(local_path)
            raise

    def check(
        self,
        oid: str,
        expected_size: int,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
    ) -> str | None:
        """Reread an object; None when it is intact, else what is wrong with it."""
        try:
            self._stat_or_raise(oid, expected_size)
            digest = hashlib.sha256()
            with self.open(oid) as src:
                n = copy(
                    src,
                    None,
                    digest,
                    on_bytes,
                    should_stop,
                    read_error=partial(read_failed, self.target.uri, what=f"object {oid}"),
                )
            _check_object(oid, n, expected_size, digest.hexdigest())
        except Cancelled:
            raise
        except CairnError as exc:
            return exc.message
        return None

    def _stat_or_raise(self, oid: str, expected_size: int) -> None:
        actual = self.size_of(oid)
        if actual is None:
            raise BackupInvalid(f"object {oid} is missing")
        if actual != expected_size:
            raise BackupInvalid(f"object {oid} is corrupt: size {actual}, expected {expected_size}")


def _check_object(oid: str, n: int, expected_size: int, actual_oid: str) -> None:
    if n != expected_size:
        raise BackupInvalid(f"object {oid} is corrupt: size {n}, expected {expected_size}")
    if actual_oid != oid:
        raise BackupInvalid(f"object {oid} is corrupt: sha256 mismatch")


def _check_source(path: str, oid: str, n: int, sha256: str | None, size: int | None) -> None:
    """The caller's recorded hash/size must match what was read: otherwise the
    source changed under us and storing it would make a lie of the manifest."""
    if sha256 is not None and oid != sha256:
        raise BackupInvalid(
            f"file '{path}' changed while being backed up: sha256 {oid}, expected {sha256}"
        )
    if size is not None and n != size:
        raise BackupInvalid(
            f"file '{path}' changed while being backed up: size {n}, expected {size}"
        )


def _close_quietly(stream: pa.NativeFile) -> None:
    with contextlib.suppress(OSError):
        stream.close()
