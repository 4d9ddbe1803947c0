"""The content-addressed object store: immutable blobs named after their content.

An object is never written twice. When the caller already knows a file's sha256
(Parquet files are immutable and their hash is recorded when they are flushed),
an object that is present costs one stat and no reading at all: that is what
makes the second backup of an unchanged namespace nearly free. How a content is
stored (raw or zstd, plain or encrypted) and what its object is called is the
codec's business (see codec.py); a plain, uncompressed object is exactly the
file, named by its sha256, as in format 1.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pyarrow as pa
import pyarrow.fs as pafs

from .. import priority
from .atomic import delete_quietly, make_dirs, publish_new, vanished, write_atomic
from .codec import (
    RAW,
    ZSTD,
    Encoder,
    Form,
    Found,
    form_of,
    forms,
    sample,
    worth_compressing,
)
from .crypto import Keys
from .fastcopy import copy_file
from .layout import (
    OBJECTS,
    check_oid,
    is_oid,
    join,
    object_path,
    temp_path,
)
from .listing import list_folder
from .nofollow import handler_of
from .object_reads import ObjectReads
from .oserrors import write_failed, writing
from .sources import check_source, file_size, source_errors
from .targets import Target
from .tmpfiles import Spare, remove_tmp
from .transfer import OnBytes, Readable, ShouldStop, check_stop, copy, hash_file

OnOid = Callable[[str], None]
OnCopied = Callable[[], None]  # the bytes are written; only the fsync and publish are left

# S3 copies an object server-side (CopyObject) up to 5 GiB; larger ones are
# written straight to their final key (see `_stage`).
MAX_SERVER_COPY = 5 * 1024**3


@dataclass(frozen=True)
class PutResult:
    """`written` is False when the object was already in the target (deduplicated).
    `size` is what the object takes in the target; `sha256` and `plain_size`
    describe the file's own content (equal to oid and size for a raw object)."""

    oid: str
    size: int
    written: bool
    sha256: str
    plain_size: int


class ObjectStore(ObjectReads):
    """Objects of one target. Local writes go through `tmp/` and a rename; S3
    writes go straight to the final key (a PUT is atomic there).

    `compress` lets compressible content be stored with zstd; `write_keys`
    encrypts new objects; `keyring` holds every key that may open objects read."""

    def __init__(self, target: Target, durable: bool = True, compress: bool = False) -> None:
        self.target = target
        self.durable = durable
        self.compress = compress
        self.write_keys: Keys | None = None
        self.keyring: list[Keys] = []

    def __getstate__(self) -> dict[str, object]:
        """Pickled without its keys (KeyRing.__getstate__ says why): they are
        chosen again from the repository's key ring before a write or read."""
        return {**self.__dict__, "write_keys": None, "keyring": []}

    # --- looking ---------------------------------------------------------------

    def path(self, oid: str) -> str:
        return object_path(self.target.base, check_oid(oid))

    def size_of(self, oid: str) -> int | None:
        """The stored size of `oid`, or None when it is absent."""
        return self.sizes([oid]).get(oid)

    def has(self, oid: str) -> bool:
        return self.size_of(oid) is not None

    def list(self) -> dict[str, int]:
        """Every object present, with its size (stray files are ignored: only
        `objects/<aa>/<oid>` itself is an object, not a key deeper down named
        like one, `objects/<aa>/<aa>/<oid>`, which a prune took for it)."""
        infos = list_folder(self.target, join(self.target.base, OBJECTS), recursive=True)
        found: dict[str, int] = {}
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            oid = info.path.rsplit("/", 1)[-1]
            if is_oid(oid) and info.path == self.path(oid):
                found[oid] = info.size
        return found

    def names_for(self, sha256: str) -> builtins.list[str]:
        """Every object name content `sha256` may get from this store's writes."""
        return [f.oid for f in forms(check_oid(sha256), self.write_keys, self.compress)]

    def find(self, sha256: str, plain_size: int | None) -> Found:
        """An object already holding content `sha256`, with its stored size; not one
        cut short (a wrong size), nor a compressed one that does not decode to it."""
        for form in forms(sha256, self.write_keys, self.compress):
            stored = self.size_served(form.oid)
            if stored is not None and self.holds(form, stored, sha256, plain_size):
                return form, stored
        return None

    def find_all(self, contents: builtins.list[tuple[str, int | None]]) -> builtins.list[Found]:
        """`find` for each (sha256, plain size), in one look-up of every name."""
        return self.found_among(contents, [forms(check_oid(sha), self.write_keys, self.compress)
                                           for sha, _ in contents])

    # --- writing ---------------------------------------------------------------

    def put_file(
        self,
        local_path: str,
        sha256: str | None = None,
        size: int | None = None,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
        on_oid: OnOid | None = None,
        on_copied: OnCopied | None = None,
    ) -> PutResult:
        """Store a local file. `on_oid` is told the content's sha256 before any
        object is looked up or published, so a lock can protect its names from a
        concurrent prune. `on_copied`: a local put's bytes are written (see OnCopied).
        A source that cannot be read is BackupInvalid (sources.py)."""
        check_stop(should_stop)
        if sha256 is not None:
            check_oid(sha256)
            if on_oid is not None:
                on_oid(sha256)
            hit = self.find(sha256, size)
            if hit is not None:
                return self._reused(local_path, sha256, size, hit, on_bytes)
        with source_errors(local_path):
            if self.write_keys is None and not self.compress:
                if self.target.kind == "local":
                    return self._put_via_temp(local_path, sha256, size, on_bytes, should_stop,
                                              on_oid, on_copied)
                return self._put_direct(local_path, sha256, size, on_bytes, should_stop, on_oid)
            return self._put_encoded(local_path, sha256, size, on_bytes, should_stop, on_oid,
                                     on_copied)

    def _reused(
        self,
        local_path: str,
        sha256: str,
        size: int | None,
        hit: tuple[Form, int],
        on_bytes: OnBytes | None,
    ) -> PutResult:
        form, stored = hit
        if size is None:
            size = stored if form.encoding == RAW and form.keys is None else file_size(local_path)
        if on_bytes is not None:
            on_bytes(size)
        return PutResult(form.oid, stored, False, sha256, size)

    def put_bytes(self, data: bytes, on_oid: OnOid | None = None) -> PutResult:
        """Store a small in-memory blob."""
        oid = hashlib.sha256(data).hexdigest()
        if self.write_keys is not None or self.compress:
            if on_oid is not None:
                on_oid(oid)
            hit = self.find(oid, len(data))
            if hit is not None:
                return self._reused("", oid, len(data), hit, None)
            with tempfile.NamedTemporaryFile(prefix="cairn-blob-") as tmp:
                tmp.write(data)
                tmp.flush()
                return self.put_file(tmp.name, oid, len(data), on_oid=on_oid)
        if on_oid is not None:
            on_oid(oid)
        if self.size_served(oid) == len(data):
            return PutResult(oid, len(data), False, oid, len(data))
        with writing(self.target.uri):
            make_dirs(self.target, self.path(oid).rsplit("/", 1)[0])
        write_atomic(self.target, self.path(oid), data, self.durable)
        return PutResult(oid, len(data), True, oid, len(data))

    def _put_via_temp(
        self,
        local_path: str,
        sha256: str | None,
        size: int | None,
        on_bytes: OnBytes | None,
        should_stop: ShouldStop | None,
        on_oid: OnOid | None,
        on_copied: OnCopied | None = None,
    ) -> PutResult:
        """Format 1, local: one pass copies into `tmp/` and hashes, then a rename."""
        uri = self.target.uri
        tmp = temp_path(self.target.base, self.target.writer)
        with open(local_path, "rb", buffering=0) as src:
            with writing(uri):
                make_dirs(self.target, tmp.rsplit("/", 1)[0])
            try:
                n, oid = self._upload(src, tmp, on_bytes, should_stop, on_copied)
                check_source(local_path, oid, n, sha256, size)
                if on_oid is not None:
                    on_oid(oid)
                if self.size_of(oid) == n:
                    delete_quietly(self.target, tmp)
                    return PutResult(oid, n, False, oid, n)
                with writing(uri):
                    new = publish_new(self.target, tmp, self.path(oid), self.durable,
                                      handler_of(self.target.fs) is not None,
                                      lambda: self.size_of(oid) == n)
                return PutResult(oid, n, new, oid, n)
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
        """Format 1, object storage: hash first when the sha256 is unknown (local
        reads are cheap next to the network), then skip, or upload under `tmp/`,
        check, and copy to the final key server-side (`_stage`)."""
        if sha256 is None:
            sha256, size, reused = self._hash_then_find(local_path, size, on_bytes,
                                                        should_stop, on_oid)
            if reused is not None:
                return reused
        final = self.path(sha256)
        dest = self._stage(final, size)
        with writing(self.target.uri):
            make_dirs(self.target, dest.rsplit("/", 1)[0])
        with open(local_path, "rb", buffering=0) as src:
            try:
                n, got = self._upload(src, dest, on_bytes, should_stop)
                check_source(local_path, got, n, sha256, size)
                if dest != final and not self._move_unless_present(dest, sha256, n):
                    return PutResult(sha256, n, False, sha256, n)
            except BaseException:
                delete_quietly(self.target, dest)
                raise
        return PutResult(sha256, n, True, sha256, n)

    def _stage(self, final: str, size: int | None) -> str:
        """Where an upload to object storage goes first. A PUT cut short by an
        error or a cancel still completes (pyarrow cannot abort an upload), so
        an upload straight to `final` could overwrite the same content another
        server stored meanwhile with a piece of it. Under `tmp/`, only a whole,
        checked upload is copied to `final`; only an object too large for a
        server-side copy (over 5 GiB) is written in place, as before."""
        if size is not None and size > MAX_SERVER_COPY:
            return final
        return temp_path(self.target.base, self.target.writer)

    def _move_unless_present(self, staged: str, oid: str, stored: int) -> bool:
        """Publish a staged S3 upload as object `oid`; False (and the upload
        dropped) when another writer stored that object meanwhile."""
        if self.size_served(oid) == stored:
            delete_quietly(self.target, staged)
            return False
        final = self.path(oid)
        with writing(self.target.uri):
            make_dirs(self.target, final.rsplit("/", 1)[0])
            try:
                self.target.fs.move(staged, final)
            except OSError as exc:
                if self.target.fs.get_file_info(staged).type == pafs.FileType.NotFound:
                    raise vanished(self.target, staged, exc) from exc
                raise
        return True

    def _hash_then_find(
        self,
        local_path: str,
        size: int | None,
        on_bytes: OnBytes | None,
        should_stop: ShouldStop | None,
        on_oid: OnOid | None,
    ) -> tuple[str, int, PutResult | None]:
        """A file whose sha256 is not known yet: hash it, tell the lock, and reuse
        an object already stored for that content."""
        priority.lower_if_started_normal()  # CPU on this thread (inflight.py)
        sha256, hashed = hash_file(local_path, should_stop)
        check_source(local_path, sha256, hashed, None, size)
        if on_oid is not None:
            on_oid(sha256)
        hit = self.find(sha256, hashed)
        if hit is not None:
            return sha256, hashed, self._reused(local_path, sha256, hashed, hit, on_bytes)
        return sha256, hashed, None

    def _put_encoded(
        self,
        local_path: str,
        sha256: str | None,
        size: int | None,
        on_bytes: OnBytes | None,
        should_stop: ShouldStop | None,
        on_oid: OnOid | None,
        on_copied: OnCopied | None = None,
    ) -> PutResult:
        """Compressed or encrypted: the name depends on the content's sha256, so an
        unknown one is computed first; then the file is encoded on the way to
        `tmp/` (local) or to its final key (S3), checked against that sha256."""
        if sha256 is None:
            sha256, size, reused = self._hash_then_find(local_path, size, on_bytes,
                                                        should_stop, on_oid)
            if reused is not None:
                return reused
        local = self.target.kind == "local"
        uri = self.target.uri
        with open(local_path, "rb", buffering=0) as src:
            encoding = RAW
            if self.compress and worth_compressing(sample(src, os.fstat(src.fileno()).st_size)):
                encoding = ZSTD
            form = form_of(sha256, encoding, self.write_keys)
            final = self.path(form.oid)
            dest = temp_path(self.target.base, self.target.writer) if local else self._stage(final, size)
            with writing(uri):
                make_dirs(self.target, dest.rsplit("/", 1)[0])
            try:
                if form.encoding == RAW and form.keys is None:  # not worth compressing
                    # stored as is: fd to fd, locally
                    n, digest = self._upload(src, dest, on_bytes, should_stop,
                                             on_copied if local else None)
                    stored = n
                else:
                    n, stored, digest = self._upload_encoded(src, dest, form, on_bytes,
                                                             should_stop)
                    if local and on_copied is not None:
                        on_copied()  # publish() fsyncs it
                check_source(local_path, digest, n, sha256, size)
                if local:
                    existing = self.size_of(form.oid)
                    if existing is not None and self.holds(form, existing, sha256, n):
                        # another writer stored it meanwhile (a damaged one is replaced)
                        delete_quietly(self.target, dest)
                        return PutResult(form.oid, existing, False, sha256, n)
                    synced = (handler_of(self.target.fs) is not None and form.encoding == RAW
                              and form.keys is None)
                    with writing(uri):
                        if not publish_new(self.target, dest, final, self.durable, synced,
                                           lambda: self.holds_now(form, sha256, n)):
                            return PutResult(form.oid, stored, False, sha256, n)
                elif dest != final and not self._move_unless_present(dest, form.oid, stored):
                    return PutResult(form.oid, stored, False, sha256, n)
            except BaseException:
                delete_quietly(self.target, dest)
                raise
        return PutResult(form.oid, stored, True, sha256, n)

    def _upload(
        self,
        src: Readable,
        path: str,
        on_bytes: OnBytes | None,
        should_stop: ShouldStop | None,
        on_copied: OnCopied | None = None,
    ) -> tuple[int, str]:
        """Stream `src` into a new file at `path`, hashed: (bytes, sha256 hex of
        exactly the bytes written); target errors become CairnErrors. The caller
        removes `path` if this raises."""
        uri = self.target.uri
        handler = handler_of(self.target.fs)
        if handler is not None and hasattr(src, "fileno"):  # local: fd to fd (fastcopy.py)
            with writing(uri):
                fd = handler.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
                try:
                    # Through the page cache, as `cp` writes: a RESTORE soon after reads
                    # the objects from memory (written direct, the bench's RESTORE read
                    # 519 MiB back from the disk: 2.1-2.7x the durable copy, not 1.2-1.7x).
                    done = copy_file(src.fileno(), fd, on_bytes, should_stop,
                                     partial(write_failed, uri))
                    if on_copied is not None:
                        on_copied()
                    if self.durable:
                        os.fsync(fd)  # publish() need not reopen it to sync
                finally:
                    os.close(fd)
            return done
        digest = hashlib.sha256()
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
        if on_copied is not None:
            on_copied()
        return n, digest.hexdigest()

    def _upload_encoded(
        self,
        src: Readable,
        path: str,
        form: Form,
        on_bytes: OnBytes | None,
        should_stop: ShouldStop | None,
    ) -> tuple[int, int, str]:
        """Encode `src` into a new file at `path`: (plain bytes, stored bytes, sha256)."""
        priority.lower_if_started_normal()  # zstd, AES on this thread (inflight.py)
        uri = self.target.uri
        digest = hashlib.sha256()
        with writing(uri):
            out = self.target.fs.open_output_stream(path)
            try:
                encoder = Encoder(out, form)
                n = copy(
                    src,
                    encoder,
                    digest,
                    on_bytes,
                    should_stop,
                    write_error=partial(write_failed, uri),
                )
                stored = encoder.finish()
            except BaseException:
                _close_quietly(out)
                raise
            out.close()
        return n, stored, digest.hexdigest()

    def delete(self, oid: str) -> None:
        with writing(self.target.uri), contextlib.suppress(FileNotFoundError):
            self.target.fs.delete_file(self.path(oid))

    def remove_tmp(self, older_than_seconds: float | None = None, writer: str = "",
                   spare: Spare | None = None, only: Spare | None = None) -> int:
        """Delete leftovers of crashed writes in `tmp/` (tmpfiles.remove_tmp)."""
        return remove_tmp(self.target, older_than_seconds, writer, spare, only)


def _close_quietly(stream: pa.NativeFile) -> None:
    with contextlib.suppress(OSError):
        stream.close()
