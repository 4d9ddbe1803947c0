"""Archive targets: one backup in one portable file, `NAME.tar` or `NAME.tar.zst`.

An archive is a repository packed into a tar stream (see tarball.py), holding
exactly one backup: config.json, any key file, the manifest, its objects.
BACKUP builds the backup in a staging repository under the scratch directory
(the server's `tmp/`), then packs it next to the archive and links it into
place: the archive appears complete or not at all, and an existing one is
ALREADY_EXISTS. Reading never unpacks the archive as a whole and never trusts
it: members are checked as they stream by, manifests (which sort before the
objects) are read from the front, VERIFY checks every object in one pass, and a
restore from a plain `.tar` reads each object where it lies. A `.tar.zst` cannot
be read out of order, so objects a restore passes over on the way to the one it
wants are set aside in the scratch directory, each deleted as soon as it has
been used as often as the manifest references it."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow.fs as pafs

from catalog.errors import (
    AlreadyExists,
    BackupInvalid,
    InvalidArgument,
    NotFound,
)

from .archive_objects import (
    ArchiveObjects,
    Sequential,
    Spill,
    check_member_size,
    object_name,
    unlisted,
)
from .codec import Found
from .crypto import PassphraseError
from .layout import CONFIG, KEYS, MANIFESTS, OBJECTS
from .locks import BackupLock
from .objects import OnCopied, PutResult
from .oserrors import reading, writing
from .repository import Repository
from .tarball import Reader, is_zst, pack
from .targets import Target
from .tmpfiles import Spare
from .transfer import OnBytes, ShouldStop
from .verify import MAX_ERRORS, OnProgress, VerifyReport, verify_objects

META_LIMIT = 256 << 20  # a manifest, a key file or config.json


def open_repository(
    target: Target,
    durable: bool = True,
    passphrase: str | None = None,
    compression: str = "zstd",
    scratch_dir: str | None = None,
) -> Repository:
    """The repository of any target: a directory, S3, or an archive file."""
    cls = ArchiveRepository if target.kind == "archive" else Repository
    return cls(target, durable, passphrase, compression, scratch_dir)


class ArchiveRepository(Repository):
    """The Repository API over one archive file. Writes go to a staging
    repository that becomes the archive when its manifest is written; reads come
    from the archive itself. Call `close()` (or rely on garbage collection) to
    drop temporary files early; the server's start-up sweep removes any left."""

    def __init__(
        self,
        target: Target,
        durable: bool = True,
        passphrase: str | None = None,
        compression: str = "zstd",
        scratch_dir: str | None = None,
    ) -> None:
        super().__init__(target, durable, passphrase, compression, scratch_dir)
        self._options: dict[str, Any] = {"passphrase": passphrase}
        # In a .tar.zst the stream compresses everything once; only encrypted
        # content, which the stream cannot shrink, is compressed before encryption.
        self._staging_compression = (
            "none" if is_zst(target.base) and passphrase is None else compression
        )
        self.store = ArchiveObjects(
            target, compression == "zstd", self._object_size, self._scan_objects, self._open_object
        )
        self._meta: dict[str, bytes] | None = None
        self._staging: Repository | None = None
        self._seekable: tuple[Reader, dict[str, tarfile.TarInfo]] | None = None
        self._spill: Spill | None = None
        self._freed = 0
        self._files_read = 0
        self._manifest: dict[str, Any] | None = None

    def close(self) -> None:
        self._discard_staging()
        if self._seekable is not None:
            self._seekable[0].close()
            self._seekable = None
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    # --- the archive file ------------------------------------------------------

    def exists(self) -> bool:
        with reading(self.uri):
            info = self.target.fs.get_file_info(self.target.base)
        return bool(info.type == pafs.FileType.File)

    def require_exists(self) -> None:
        if not self.exists():
            raise NotFound(f"backup archive '{self.uri}' does not exist")

    def _members_meta(self) -> dict[str, bytes]:
        """config.json, key files and the manifest: the members before the objects."""
        if self._meta is None:
            meta: dict[str, bytes] = {}
            if self.exists():
                reader = Reader(self.target.base)
                try:
                    for name, member in reader.members():
                        if name.startswith(OBJECTS + "/"):
                            break
                        meta[name] = reader.read(member, META_LIMIT)
                finally:
                    reader.close()
                if sum(n.startswith(MANIFESTS + "/") for n in meta) != 1:
                    raise BackupInvalid(f"backup archive '{self.uri}' must hold exactly one backup")
            self._meta = meta
        return self._meta

    def _read_small(self, path: str, limit: int = 0) -> bytes | None:
        """A member read with the archive's headers (`limit` is for object storage)."""
        rel = path[len(self.target.base) + 1 :]
        return self._members_meta().get(rel)

    def _key_ids(self) -> list[str]:
        prefix = KEYS + "/"
        return [n[len(prefix) : -5] for n in self._members_meta() if n.startswith(prefix)]

    def manifest_ids(self) -> list[str]:
        prefix = MANIFESTS + "/"
        return [n[len(prefix) : -5] for n in self._members_meta() if n.startswith(prefix)]

    def check_config(self) -> dict[str, Any] | None:
        if not self.exists():
            return None
        return super().check_config()

    def _readable(self) -> None:
        self.require_exists()
        if self.check_config() is None:
            raise BackupInvalid(f"backup archive '{self.uri}' has no {CONFIG}")

    def list_locks(self) -> list[dict[str, Any]]:
        return []

    def check_prunable(self) -> None:
        """An archive has no locks and no prune markers."""

    def _the_manifest(self) -> dict[str, Any]:
        """The archive's one manifest; its body too when this instance can open it."""
        if self._manifest is None:
            ids = self.manifest_ids()
            if not ids:
                raise NotFound(f"backup archive '{self.uri}' does not exist")
            self._manifest = self._load_manifest(ids[0], require_body=False)
        return self._manifest

    def _sizes(self) -> dict[str, int]:
        """Stored size of every object, by the manifest: the cap for each member."""
        return {o["oid"]: o["size"] for o in self._the_manifest()["objects"]}

    # --- writing: a staging repository, packed when its manifest is written ----

    def _refuse_existing(self) -> None:
        if self.exists():
            raise AlreadyExists(f"backup archive '{self.uri}' already exists")

    def _stage(self) -> Repository:
        if self._staging is None:
            self._refuse_existing()
            scratch = self.scratch_dir or tempfile.gettempdir()
            with writing(self.uri):
                os.makedirs(scratch, exist_ok=True)
                path = tempfile.mkdtemp(prefix="archive-", dir=scratch)
            weakref.finalize(self, shutil.rmtree, path, True)
            target = Target(fs=pafs.LocalFileSystem(), base=path, uri=self.uri, kind="local")
            self._staging = Repository(
                target, False, self._options["passphrase"], self._staging_compression
            )
        return self._staging

    def _discard_staging(self) -> None:
        staging, self._staging = self._staging, None
        if staging is not None:
            shutil.rmtree(staging.target.base, ignore_errors=True)

    def init(self) -> dict[str, Any]:
        return self._stage().init()

    def put_file(
        self,
        local_path: str,
        sha256: str | None = None,
        size: int | None = None,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
        lock: BackupLock | None = None,
        on_copied: OnCopied | None = None,
    ) -> PutResult:
        return self._stage().put_file(local_path, sha256, size, on_bytes, should_stop, lock,
                                      on_copied)

    def put_bytes(self, data: bytes, lock: BackupLock | None = None) -> PutResult:
        return self._stage().put_bytes(data, lock)

    def has_object(self, oid: str) -> bool:
        if self._staging is not None:
            return self._staging.has_object(oid)
        return self.store.has(oid)

    def has_content(self, sha256: str, size: int | None = None) -> bool:
        return self._stage().has_content(sha256, size)

    def find_contents(self, contents: list[tuple[str, int | None]]) -> list[Found] | None:
        return self._stage().find_contents(contents)

    def lock(self, backup_id: str, should_stop: ShouldStop | None = None,
             oids: Iterable[str] = ()) -> BackupLock:
        lock = self._stage().lock(backup_id, should_stop, oids)
        lock.on_end = self._discard_staging
        return lock

    def write_manifest(self, manifest_doc: dict[str, Any]) -> dict[str, Any]:
        staging = self._stage()
        if staging.manifest_ids():
            raise InvalidArgument(f"backup archive '{self.uri}' holds one backup only")
        self._refuse_existing()
        doc = staging.write_manifest(manifest_doc)
        pack(staging.target.base, self.target.base, self.durable)
        self._meta = self._manifest = None
        return doc

    def delete_manifest(self, backup_id: str) -> None:
        """Dropping the archive's backup removes the archive."""
        if backup_id not in self.manifest_ids():
            raise NotFound(f"backup '{backup_id}' does not exist in target '{self.uri}'")
        m = self._the_manifest()
        with writing(self.uri):
            os.unlink(self.target.base)
        self._freed = sum(o["size"] for o in m["objects"])
        self._meta = self._manifest = None

    def prune(
        self,
        keep: Iterable[str] = (),
        candidates: Iterable[str] | None = None,
        before_delete: Callable[[set[str]], None] | None = None,
        first: Callable[[], None] | None = None,
    ) -> int:
        """Nothing in an archive is ever unreferenced; after `delete_manifest` the
        archive is gone, and this reports what it held. `first` (a drop's
        `delete_manifest`) runs first."""
        if first is not None:
            first()
        freed, self._freed = self._freed, 0
        return freed

    def abandon(self, backup_id: str, made_target: bool = False) -> int:
        self._discard_staging()
        return 0

    def remove_tmp(self, older_than_seconds: float | None = None, writer: str = "",
                   spare: Spare | None = None, only: Spare | None = None) -> int:
        """Temp files of archives whose packing a crash interrupted; but those
        whose process tag (the first 8 of the 16 hex digits) `spare` says runs,
        and, with `only` (a sweep while the server runs: the names carry no
        writer), any whose tag `only` does not name."""
        parent, name = os.path.split(self.target.base)
        ours = re.compile(rf"^\.{re.escape(name)}\.[0-9a-f]{{16}}\.tmp\Z")  # see tarball.pack
        removed = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(parent) as entries:
            for entry in entries:
                tag = entry.name[len(name) + 2:len(name) + 10]
                if spare is not None and spare(tag) or only is not None and not only(tag):
                    continue
                if ours.match(entry.name) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
        return removed

    # --- reading objects -------------------------------------------------------

    def verify(
        self,
        backup_id: str,
        on_progress: OnProgress | None = None,
        should_stop: ShouldStop | None = None,
        contents: bool = True,
        seq_now: int = 0,
    ) -> VerifyReport:
        """One pass over the archive: every object in manifest order (oid order,
        which is also the archive's order)."""
        try:
            m = self.read_manifest(backup_id)
        except PassphraseError:
            raise
        except BackupInvalid as exc:
            return VerifyReport(backup_id, is_valid=False, errors=[exc.message])
        reader = Reader(self.target.base)
        try:
            members = Sequential(self.uri, self.store, reader)
            report = verify_objects(members.check, m, on_progress, should_stop, contents,
                                    self.scratch_dir, seq_now)
            extra = [e for e in members.finish() if e not in report.errors]
        finally:
            reader.close()
        if extra:
            report.errors = report.errors + extra[: max(1, MAX_ERRORS - len(report.errors))]
            report.is_valid = False
        return report

    def _manifest_oids(self, backup_id: str) -> list[str]:
        return [o["oid"] for o in self._load_manifest(backup_id, require_body=False)["objects"]]

    def _load_manifest(self, backup_id: str, require_body: bool = True) -> dict[str, Any]:
        """The archive's manifest, and the key files beside it: only its own key."""
        m = super()._load_manifest(backup_id, require_body)
        extra = sorted(set(self._key_ids()) - {m.get("key")})
        if extra:
            raise BackupInvalid(
                f"backup archive '{self.uri}' holds key file '{extra[0]}' that its manifest "
                "does not use"
            )
        return m

    def read_object_to(
        self,
        oid: str,
        local_path: str,
        expected_size: int,
        on_bytes: OnBytes | None = None,
        should_stop: ShouldStop | None = None,
        sha256: str | None = None,
        stored_size: int | None = None,
    ) -> None:
        """As Repository's; after the last file of the manifest, the rest of a
        `.tar.zst` is read too, so a restore refuses what VERIFY refuses."""
        super().read_object_to(oid, local_path, expected_size, on_bytes, should_stop, sha256,
                               stored_size)
        self._files_read += 1
        files = sum(len(t.get("files", [])) for t in self._the_manifest().get("tables", []))
        if self._files_read >= files and self._spill is not None:
            self._spill.drain()

    def _object_size(self, oid: str) -> int | None:
        if not is_zst(self.target.base):
            member = self._index().get(oid)
            return None if member is None else member.size
        return self._sizes().get(oid)

    def _index(self) -> dict[str, tarfile.TarInfo]:
        if self._seekable is None and not self.exists():
            return {}
        if self._seekable is None:
            reader = Reader(self.target.base, seekable=True)
            index: dict[str, tarfile.TarInfo] = {}
            try:
                for name, member in reader.members():
                    oid = object_name(self.uri, name)
                    if oid is not None:
                        index[oid] = member
            except BaseException:
                reader.close()
                raise
            self._seekable = (reader, index)
        return self._seekable[1]

    def _open_object(self, oid: str) -> Any:
        expected = self._sizes()
        if not is_zst(self.target.base):
            index = self._index()
            for found in sorted(set(index) - set(expected))[:1]:
                raise BackupInvalid(unlisted(self.uri, found))  # as VERIFY reports it
            member = index.get(oid)
            if member is None:
                raise BackupInvalid(f"object {oid} is missing")
            check_member_size(oid, member, expected.get(oid))
            assert self._seekable is not None
            return self._seekable[0].open(member)
        if self._spill is None:
            scratch = self.scratch_dir or tempfile.gettempdir()
            self._spill = Spill(self.target.base, self.uri, scratch, expected,
                                 self._the_manifest())
        return self._spill.open(oid)

    def _scan_objects(self) -> dict[str, int]:
        reader = Reader(self.target.base)
        try:
            return {
                oid: member.size
                for name, member in reader.members()
                if (oid := object_name(self.uri, name)) is not None
            }
        finally:
            reader.close()
