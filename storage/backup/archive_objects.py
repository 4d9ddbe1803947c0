"""Reading the objects of an archive: in place (`.tar`), in one forward pass
(VERIFY), or forward with what is passed over set aside (`.tar.zst` restores).
See archive.py for the archive as a whole."""

from __future__ import annotations

import builtins
import collections
import contextlib
import os
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Callable
from typing import Any, Self

from catalog.errors import (
    BackupInvalid,
    CairnError,
    Cancelled,
    InvalidArgument,
    PermissionDenied,
)

from .layout import OBJECTS, check_oid
from .objects import ObjectStore, PutResult
from .oserrors import writing
from .tarball import Reader, archive_errors, object_id
from .targets import Target
from .transfer import CHUNK_SIZE, OnBytes, ShouldStop


class ArchiveObjects(ObjectStore):
    """The objects of an archive, read in place; an archive is never changed."""

    def __init__(
        self,
        target: Target,
        compress: bool,
        size_of: Callable[[str], int | None],
        list_all: Callable[[], dict[str, int]],
        open_one: Callable[[str], Any],
    ) -> None:
        """`size_of`, `list_all` and `open_one` read the archive (ArchiveRepository)."""
        super().__init__(target, False, compress)
        self._size_of = size_of
        self._list_all = list_all
        self._open_one = open_one

    def path(self, oid: str) -> str:
        return f"{self.target.base}#{OBJECTS}/{check_oid(oid)[:2]}/{oid}"

    def size_of(self, oid: str) -> int | None:
        return self._size_of(check_oid(oid))

    def sizes(self, oids: builtins.list[str]) -> dict[str, int]:
        return {o: s for o in oids if (s := self.size_of(o)) is not None}

    def list(self) -> dict[str, int]:
        return self._list_all()

    def open(self, oid: str) -> Any:
        return self._open_one(check_oid(oid))

    def put_file(self, *args: Any, **kwargs: Any) -> PutResult:
        raise InvalidArgument(f"backup archive '{self.target.uri}' cannot be changed")

    def delete(self, oid: str) -> None:
        raise InvalidArgument(f"backup archive '{self.target.uri}' cannot be changed")

    def remove_tmp(self, older_than_seconds: float | None = None, writer: str = "",
                   spare: Any = None, only: Any = None) -> int:
        return 0


def object_name(uri: str, name: str) -> str | None:
    if not name.startswith(OBJECTS + "/"):
        return None
    oid = object_id(name)
    if oid is None:
        raise BackupInvalid(f"backup archive '{uri}' has an unexpected member {name!r}")
    return oid


def unlisted(uri: str, oid: str) -> str:
    """VERIFY's error and RESTORE's refusal for an object member the manifest does not list."""
    return f"backup archive '{uri}' holds object {oid} that its manifest does not list"


def check_member_size(oid: str, member: tarfile.TarInfo, expected: int | None) -> None:
    """Sizes are capped by the manifest before a byte of an object is read."""
    if expected is None:
        raise BackupInvalid(f"object {oid} is not listed in the archive's manifest")
    if member.size != expected:
        raise BackupInvalid(f"object {oid} is corrupt: size {member.size}, expected {expected}")


class Sequential:
    """Objects of an archive in order, for verify: `check` takes the manifest's
    objects in oid order and checks each against the next member."""

    def __init__(self, uri: str, store: ObjectStore, reader: Reader) -> None:
        self.uri = uri
        self.store = store
        self.reader = reader
        self.members = reader.members()
        self.pending: tuple[str, tarfile.TarInfo] | None = None
        self.broken: str | None = None
        self.extra: list[str] = []

    def finish(self) -> list[str]:
        """After the last object: what else the archive holds (each refused, as a
        restore refuses it), or why the rest cannot be read."""
        while (item := self._next()) is not None:
            self.pending = None
            self.extra.append(unlisted(self.uri, item[0]))
        return self.extra + ([self.broken] if self.broken else [])

    def _next(self) -> tuple[str, tarfile.TarInfo] | None:
        while self.pending is None and self.broken is None:
            try:
                item = next(self.members, None)
                if item is None:
                    return None
                oid = object_name(self.uri, item[0])
            except CairnError as exc:
                self.broken = exc.message
                return None
            if oid is not None:
                self.pending = (oid, item[1])
        return self.pending

    def check(self, obj: dict[str, Any], on_bytes: OnBytes, should_stop: ShouldStop | None,
              tail: Any = None) -> str | None:
        oid = obj["oid"]
        while True:
            item = self._next()
            if item is None:
                return self.broken or f"object {oid} is missing"
            if item[0] > oid:
                return f"object {oid} is missing"
            self.pending = None
            if item[0] == oid:
                break
            self.extra.append(unlisted(self.uri, item[0]))  # restore refuses it too
        member = item[1]
        try:
            check_member_size(oid, member, obj["size"])
            with archive_errors(self.uri), self.reader.open(member) as src:
                self.store.check_stream(
                    src, oid, obj["size"], on_bytes, should_stop,
                    obj.get("sha256"), obj.get("plain_size"), tail,
                )
        except (Cancelled, PermissionDenied):
            raise  # a cancel, or a link inside the target: not damage to report
        except CairnError as exc:
            return exc.message
        return None


class Spill:
    """Reads a `.tar.zst` forward only. An object wanted now is streamed
    straight from the archive; objects passed over on the way are copied to a
    scratch directory until they are wanted. A copy is deleted once it has been
    read as often as the manifest uses it, and the directory with the last one:
    a restore that completes leaves nothing. `close()` (a failed restore, or
    garbage collection as a last resort) removes whatever is left."""

    def __init__(
        self, archive: str, uri: str, scratch: str, sizes: dict[str, int], manifest: dict[str, Any]
    ) -> None:
        self.archive = archive
        self.uri = uri
        self.scratch = scratch
        self.sizes = sizes
        self.uses: collections.Counter[str] = collections.Counter()
        for t in manifest.get("tables", []):
            self.uses.update(f["oid"] for f in t.get("files", []))
        for oid in sizes:
            self.uses[oid] = max(self.uses[oid], 1)
        self.dir: str | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.reader: Reader | None = None
        self.members: Any = None
        self.spilled: set[str] = set()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self._finalizer is not None:
            self._finalizer()
        self.dir = self._finalizer = None
        self.spilled.clear()

    def _restart(self) -> None:
        if self.reader is not None:
            self.reader.close()
        self.reader = Reader(self.archive)
        self.members = self.reader.members()

    def open(self, oid: str) -> Any:
        if oid in self.spilled:
            return SpilledFile(self, oid)
        for attempt in range(2):
            if self.reader is None or attempt:
                self._restart()
            assert self.reader is not None
            for name, member in self.members:
                found = object_name(self.uri, name)
                if found is None:
                    continue
                if found not in self.sizes:
                    raise BackupInvalid(unlisted(self.uri, found))
                if found == oid:
                    check_member_size(oid, member, self.sizes.get(oid))
                    if self.uses[oid] > 1:
                        self._spill(oid, member)
                        return SpilledFile(self, oid)
                    self.uses[oid] -= 1
                    return self.reader.open(member)
                if self.uses[found] > 0 and found not in self.spilled and found in self.sizes:
                    check_member_size(found, member, self.sizes[found])
                    self._spill(found, member)
            self.reader.close()  # the end of the archive: nothing more to read
            self.reader = None
        raise BackupInvalid(f"object {oid} is missing")

    def drain(self) -> None:
        """After the last object a restore reads: the rest of the archive must
        hold nothing the manifest does not list (VERIFY refuses it too)."""
        if self.reader is None:
            return
        for name, _member in self.members:
            found = object_name(self.uri, name)
            if found is not None and found not in self.sizes:
                raise BackupInvalid(unlisted(self.uri, found))

    def _spill(self, oid: str, member: tarfile.TarInfo) -> None:
        assert self.reader is not None
        if self.dir is None:
            with writing(self.uri):
                os.makedirs(self.scratch, exist_ok=True)
                self.dir = tempfile.mkdtemp(prefix="archive-read-", dir=self.scratch)
            self._finalizer = weakref.finalize(self, shutil.rmtree, self.dir, True)
        path = os.path.join(self.dir, oid)
        with archive_errors(self.uri), self.reader.open(member) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_SIZE)
        self.spilled.add(oid)

    def path(self, oid: str) -> str:
        assert self.dir is not None
        return os.path.join(self.dir, oid)

    def used(self, oid: str) -> None:
        self.uses[oid] -= 1
        if self.uses[oid] <= 0 and oid in self.spilled:
            self.spilled.discard(oid)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(oid))
            if not self.spilled:
                self.close_dir()

    def close_dir(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self.dir = self._finalizer = None


class SpilledFile:
    """A spilled object, counted as used when closed."""

    def __init__(self, spill: Spill, oid: str) -> None:
        self.spill = spill
        self.oid = oid
        self.f = open(spill.path(oid), "rb")  # noqa: SIM115 - closed by close()

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def readinto(self, buffer: Any) -> int:
        return self.f.readinto(buffer)

    def close(self) -> None:
        if not self.f.closed:
            self.f.close()
            self.spill.used(self.oid)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
