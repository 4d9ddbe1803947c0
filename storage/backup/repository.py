"""A backup repository: one target holding objects, manifests, locks and keys.

Writes create the target on first use; reads of one that does not exist raise
NotFound, so a typo in SHOW BACKUPS IN '…' leaves nothing behind. `compression`
('zstd' or 'none') and `passphrase` apply to what this instance writes; reading
copes with whatever a backup was written with (given the passphrase for an
encrypted one). `open_repository` also opens archive targets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Self

import pyarrow as pa
import pyarrow.fs as pafs

from catalog.errors import (
    AlreadyExists,
    BackupInvalid,
    CairnError,
    InvalidArgument,
    NotFound,
    Unavailable,
)

from . import envelope, manifest, recorded, schema
from .atomic import SMALL_MAX, fsync_path, make_dirs, read_small, write_small
from .codec import Found
from .config import encode_config, parse_config
from .creation import create
from .crypto import Keys, NotEncrypted, PassphraseError, is_key_id
from .discard import confirm
from .keyring import KeyRing
from .layout import (
    CONFIG,
    KEYS,
    MANIFESTS,
    OBJECTS,
    check_backup_id,
    check_oid,
    join,
    key_path,
    manifest_path,
)
from .listing import list_folder, manifest_sizes, summary_keeper
from .locks import BackupLock
from .objects import ObjectStore, OnCopied, OnOid, PutResult
from .oserrors import reading, writing
from .pruning import LocksAndPrune
from .scan import not_served, not_served_entry, scan_manifests
from .selection import choose, may_be_of, newest_first
from .targets import Target
from .tmpfiles import Spare
from .transfer import OnBytes, ShouldStop
from .verify import OnProgress, VerifyReport, verify_objects

log = logging.getLogger(__name__)

COMPRESSIONS = ("zstd", "none")


class Repository(LocksAndPrune):
    """Objects, manifests, locks and keys of one target. `durable=False` skips fsync
    (tests and benchmarks only). The passphrase is kept only to derive keys from;
    never shown (not even by repr)."""

    def __init__(
        self,
        target: Target,
        durable: bool = True,
        passphrase: str | None = None,
        compression: str = "zstd",
        scratch_dir: str | None = None,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise InvalidArgument("compression must be 'zstd' or 'none'")
        self.target = target
        self.durable = durable
        self.compression = compression
        self.scratch_dir = scratch_dir
        self.store = ObjectStore(target, durable, compress=compression == "zstd")
        self._keyring = KeyRing(passphrase, target.uri, self._read_key, self._key_ids, self._write_key)
        self._config: dict[str, Any] | None = None
        self._config_data: bytes | None = None  # as read or written (discard.confirm)
        self.made_target = False  # this instance wrote its config.json (discard.py)
        self.recorded: recorded.Records | None = None  # the server's records of its backups (recorded.py)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.uri!r}, compression={self.compression!r}, "
            f"encrypted={self.encrypted})"
        )

    @property
    def encrypted(self) -> bool:
        """Whether this instance writes encrypted backups (it was given a passphrase)."""
        return self._keyring.has_passphrase

    def close(self) -> None:
        """Release temporary state (archives keep some); the repository stays usable."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the target and its config ---------------------------------------------

    def exists(self) -> bool:
        """Whether the target is there: a directory locally, any key under the prefix on S3."""
        with reading(self.uri):
            info = self.target.fs.get_file_info(self.target.base)
        if info.type == pafs.FileType.File:
            raise NotFound(f"backup target '{self.uri}' is a file, not a backup repository")
        return bool(info.type == pafs.FileType.Directory)

    def require_exists(self) -> None:
        if not self.exists():
            raise NotFound(f"backup target '{self.uri}' does not exist")

    def init(self) -> dict[str, Any]:
        """Create the target and its `config.json` unless they exist; return the config."""
        existing = self.check_config()
        if existing is not None:
            return existing
        self._config = config = create(self.target, self.uri, self.durable)
        self._config_data, self.made_target = encode_config(config), True
        return config

    def check_config(self) -> dict[str, Any] | None:
        """The target's config, or None when it is empty (has none yet).
        BackupInvalid when it is corrupt, from a format this Cairn does not know,
        or missing beside what only a repository holds (see `_internals`)."""
        if self._config is None:
            self._refuse_links()
            data = self._read_small(join(self.target.base, CONFIG))
            if data is not None:
                self._config, self._config_data = parse_config(data, self.uri), data
            else:
                found = self._internals()
                if found:
                    raise BackupInvalid(
                        f"backup target '{self.uri}' is damaged: it has no {CONFIG} "
                        f"but holds {', '.join(found)}"
                    )
        return self._config

    def _internals(self) -> list[str]:
        """Which of `manifests/`, `objects/`, `keys/` (what backups consist of)
        the target holds. Cairn writes `config.json` before any of them, so
        without it they mean damage. A target with none of them is empty: at
        most transient state (`tmp/`, `locks/`, `prunes/`) or files that are not
        Cairn's."""
        return sorted(f"{i.base_name}/" for i in self._top() if i.base_name in (MANIFESTS, OBJECTS, KEYS))

    def _refuse_links(self) -> None:
        """Every operation on a local target first lists its top level, so a link
        planted at the top (for `tmp/`, `objects/`, `config.json`, …) is refused
        the same way by all of them, whether or not they would use it. Links
        deeper down are refused where they are met (every open is no-follow)."""
        if self.target.kind == "local":
            self._top()

    def _top(self) -> list[pafs.FileInfo]:
        """The target's top-level entries; locally a link among them is
        PERMISSION_DENIED (nofollow.py), whichever one it is."""
        try:
            return list_folder(self.target, self.target.base)
        except CairnError as exc:
            if isinstance(exc.__cause__, NotADirectoryError):
                return []  # not a repository at all: what uses it says so
            raise

    def _readable(self) -> None:
        self.require_exists()
        self.check_config()

    def _read_small(self, path: str, limit: int = SMALL_MAX) -> bytes | None:
        """A whole small file (config, manifest, lock, key), or None if absent."""
        return read_small(self.target, path, limit)

    # --- keys ------------------------------------------------------------------

    def _read_key(self, key_id: str) -> bytes | None:
        return self._read_small(key_path(self.target.base, key_id))

    def _key_ids(self) -> list[str]:
        infos = list_folder(self.target, join(self.target.base, KEYS))
        return [
            i.base_name[:-5]
            for i in infos
            if i.type == pafs.FileType.File
            and i.base_name.endswith(".json")
            and is_key_id(i.base_name[:-5])
        ]

    def _write_key(self, key_id: str, data: bytes) -> None:
        with writing(self.uri):
            make_dirs(self.target, join(self.target.base, KEYS))
        write_small(self.target, key_path(self.target.base, key_id), data, self.durable,
                    check=True)

    def _open_key(self, key_id: str, backup_id: str) -> Keys | None:
        if not is_key_id(key_id):
            raise BackupInvalid(f"manifest of backup '{backup_id}' is corrupt: bad key id")
        keys = self._keyring.open(key_id, f"backup '{backup_id}' in target '{self.uri}'")
        self.store.keyring = self._keyring.unlocked
        return keys

    def _confirm(self) -> None:
        confirm(self.target, self._config_data, self._keyring.writer_file, self.durable)

    def _writing(self) -> None:
        """Ready to write: the target exists and, when encrypting, the key is chosen."""
        self.init()
        if self._keyring.has_passphrase and self.store.write_keys is None:
            self.store.write_keys = self._keyring.for_writing()
            self.store.keyring = self._keyring.unlocked

    def writer_keys(self) -> Keys | None:
        """The key this instance encrypts with (None when it does not encrypt);
        archived segments use it for their bodies."""
        self._writing()
        return self.store.write_keys

    def reader_keys(self, key_id: str, what: str) -> Keys:
        """The keys of `key_id` for reading `what`; BackupInvalid (PassphraseError)
        without the passphrase or with a wrong one."""
        if not is_key_id(key_id):
            raise BackupInvalid(f"{what} is corrupt: bad key id")
        keys = self._keyring.open(key_id, what)
        if keys is None:
            raise PassphraseError(f"{what} is encrypted: give its encryption_passphrase")
        return keys

    # --- objects ---------------------------------------------------------------

    def has_object(self, oid: str) -> bool:
        return self.store.has(oid)

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
        """Store a local file as an object; with a known `sha256` an object already
        present is not read or written again. `lock` records the oid first;
        `on_copied` is told when only the disk is left (ObjectStore.put_file)."""
        on_oid: OnOid | None = (lambda oid: lock.add([oid])) if lock is not None else None
        self._writing()
        return self.store.put_file(local_path, sha256, size, on_bytes, should_stop, on_oid,
                                   on_copied)

    def put_bytes(self, data: bytes, lock: BackupLock | None = None) -> PutResult:
        self._writing()
        return self.store.put_bytes(
            data, (lambda oid: lock.add([oid])) if lock is not None else None
        )

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
        """Copy a file of a backup to `local_path`, checked: sizes and sha256 of its entries."""
        self.store.read_to(oid, local_path, expected_size, on_bytes, should_stop, sha256, stored_size)

    def has_content(self, sha256: str, size: int | None = None) -> bool:
        """Whether a put of content `sha256` would be deduplicated."""
        self._writing()
        return self.store.find(check_oid(sha256), size) is not None

    def find_contents(self, contents: list[tuple[str, int | None]]) -> list[Found] | None:
        """`has_content` of many (sha256, size), each with its object; None if not local."""
        self._writing()
        return self.store.find_all(contents) if self.target.kind == "local" else None

    def open_object(self, oid: str) -> pa.NativeFile:
        return self.store.open(oid)

    def list_objects(self) -> dict[str, int]:
        return self.store.list()

    def delete_object(self, oid: str) -> None:
        self.store.delete(oid)

    def remove_tmp(self, older_than_seconds: float | None = None, writer: str = "",
                   spare: Spare | None = None, only: Spare | None = None) -> int:
        self._refuse_links()
        return self.store.remove_tmp(older_than_seconds, writer, spare, only)

    # --- manifests -------------------------------------------------------------

    def write_manifest(self, manifest_doc: dict[str, Any]) -> dict[str, Any]:
        """Seal and publish a backup's manifest, after checking every object it
        references is present with a size that fits. Returns the manifest as stored."""
        m, wanted = manifest.prepare(manifest_doc)
        backup_id = check_backup_id(m.get("backup_id"))
        self._writing()
        path = manifest_path(self.target.base, backup_id)
        oids = sorted(wanted)
        with reading(self.uri):
            if self.target.fs.get_file_info(path).type != pafs.FileType.NotFound:
                raise AlreadyExists(f"backup '{backup_id}' already exists in target '{self.uri}'")
            infos = self.target.fs.get_file_info([self.store.path(o) for o in oids])
        stored: dict[str, int] = {}
        for oid, info in zip(oids, infos, strict=True):
            sha, plain = wanted[oid]
            expected = plain if sha is None else self._expected_size(oid, sha, plain)
            if info.type != pafs.FileType.File or (expected is not None and info.size != expected):
                raise BackupInvalid(
                    f"cannot write manifest of backup '{backup_id}': object {oid} "
                    f"is missing from target '{self.uri}' or has the wrong size"
                )
            stored[oid] = info.size
        compress = self.compression == "zstd"
        features = ([manifest.ZSTD] if compress else []) + ([manifest.AES] if self.encrypted else [])
        sealed = manifest.seal(m, wanted, stored, features)
        data, doc = envelope.pack(sealed, compress, self.store.write_keys)
        write_small(self.target, path, data, self.durable, check=True)
        envelope.remember(data, backup_id, doc)
        return doc

    def _expected_size(self, oid: str, sha256: str, plain_size: int) -> int | None:
        try:
            return self.store.form(oid, sha256).stored_size(plain_size)
        except BackupInvalid as exc:
            raise InvalidArgument(f"manifest lists {exc.message}") from exc

    def read_manifest(self, backup_id: str, require_body: bool = True) -> dict[str, Any]:
        """A checked manifest: NotFound if absent, BackupInvalid if damaged or unknown.

        An encrypted backup needs the passphrase (PassphraseError, a BackupInvalid,
        without it or with a wrong one), unless `require_body` is false: then its
        public header comes back, without `tables` (enough to list or drop it).
        Given a passphrase, a backup that is not encrypted is refused when its body
        is required: anyone could have written it without the key."""
        check_backup_id(backup_id)
        self._readable()
        m = self._load_manifest(backup_id, require_body)
        if require_body and self.encrypted and m.get("encrypted") is not True:
            raise NotEncrypted(
                f"backup '{backup_id}' in target '{self.uri}' is not encrypted, but an "
                "encryption_passphrase was given: a backup anyone could have written without "
                "the key is not restored or verified as an encrypted one (leave the passphrase "
                "out for a plain backup)"
            )
        if require_body:  # to restore or verify it (a drop reads the header alone)
            recorded.check(self.recorded, backup_id, m, self.uri)
        return m

    def read_backup(self, backup_id: str) -> schema.Manifest:
        """A backup's whole manifest as its type (read_manifest, decoded by schema.py)."""
        return schema.load(self.read_manifest(backup_id))

    def _load_manifest(self, backup_id: str, require_body: bool = True) -> dict[str, Any]:
        return envelope.unpack_checked(
            self._manifest_bytes(backup_id), backup_id,
            lambda key_id: self._open_key(key_id, backup_id), require_body
        )

    def _manifest_oids(self, backup_id: str) -> list[str]:
        """The oids of a manifest's objects, as `_load_manifest` without the body
        required would give them (envelope.checked_oids)."""
        return envelope.checked_oids(self._manifest_bytes(backup_id), backup_id,
                                     lambda key_id: self._open_key(key_id, backup_id))

    def _manifest_bytes(self, backup_id: str) -> bytes:
        data = self._read_small(manifest_path(self.target.base, backup_id))
        if data is None:
            if self.still_listed([backup_id]):  # not dropped: not served now
                raise not_served(self.uri, backup_id)
            raise NotFound(f"backup '{backup_id}' does not exist in target '{self.uri}'")
        return data

    def manifest_ids(self) -> list[str]:
        """The ids of `manifests/<id>.json`, each once (listing.manifest_sizes)."""
        return list(manifest_sizes(self.target))

    def list_manifests(self, namespace: str | None = None,
                       light: bool = False) -> list[dict[str, Any]]:
        """Every manifest, newest snapshot first (`newest_first`). A manifest that cannot be
        read is listed as {"backup_id", "error"} (after the good ones, and only when not
        filtering by namespace) instead of failing the whole listing. An encrypted one
        this instance cannot open is its public header (no `tables`). `light`: each
        as its summary (`listing`'s), for keep_last, which re-reads what it drops."""
        good, bad = self._scan_manifests(light)
        if namespace is not None:
            return [m for m in good if m["namespace"] == namespace]
        return good + sorted(bad, key=lambda e: e["backup_id"], reverse=True)

    def listing(self, namespace: str | None = None, light: bool = False) -> list[dict[str, Any]]:
        """What SHOW BACKUPS … IN and RESTORE see: the readable backups of
        `namespace` (all when None) and every damaged one that may be of it, with
        the namespace and times its own checksum vouches for (selection.py).
        Newest snapshot first (`newest_first`). `light`: each checked as ever,
        kept as its summary (listing.summary_keeper: no tables, objects, long labels)."""
        good, bad = self._scan_manifests(light)
        entries = [m for m in good if namespace is None or m["namespace"] == namespace]
        entries += [e for e in bad if may_be_of(e, namespace)]
        return sorted(entries, key=newest_first, reverse=True)

    def choose_backup(
        self, namespace: str, backup_id: str | None = None, as_of: str | None = None,
        accept: Callable[[dict[str, Any]], bool] | None = None, what: str | None = None,
    ) -> dict[str, Any]:
        """The manifest a RESTORE of `namespace` takes (selection.choose): never an
        older backup because a newer one is damaged; `accept` narrows the newest
        (by its header) to the backups that can serve (a table's, a namespace's:
        `what`, for the NOT_FOUND when none does)."""
        return choose(self, namespace, backup_id, as_of, accept, what)

    def _scan_manifests(self, light: bool = False) -> tuple[list[dict[str, Any]],
                                                            list[dict[str, Any]]]:
        self._readable()
        sizes = manifest_sizes(self.target) if self.target.kind == "s3" else None
        ids = self.manifest_ids() if sizes is None else list(sizes)
        keep = summary_keeper(len(ids)) if light else lambda m: m  # listing.py
        good, bad, gone = scan_manifests(
            ids, lambda backup_id, limit: self._read_small(
                manifest_path(self.target.base, backup_id), limit),
            lambda data, backup_id: keep(envelope.unpack_checked(
                data, backup_id, lambda key_id: self._open_key(key_id, backup_id), False, light
            )), self.uri, parallel=sizes is not None, sizes=sizes,
        )
        bad += [not_served_entry(self.uri, i) for i in self.still_listed(gone)]
        good, bad = recorded.judged(self.recorded, good, bad, self.uri)
        good.sort(key=newest_first, reverse=True)
        return good, bad

    def delete_manifest(self, backup_id: str) -> None:
        check_backup_id(backup_id)
        self.require_exists()
        path = manifest_path(self.target.base, backup_id)
        with writing(self.uri):
            try:
                self.target.fs.delete_file(path)
            except FileNotFoundError:
                raise NotFound(
                    f"backup '{backup_id}' does not exist in target '{self.uri}'"
                ) from None
            if self.target.kind == "local" and self.durable:
                fsync_path(path.rsplit("/", 1)[0])

    def referenced_objects(self) -> set[str]:
        """The union of every manifest's objects. BackupInvalid (Unavailable: it
        cannot be read now) if any listed manifest is unreadable: nothing may go."""
        used: set[str] = set()
        self.check_config()
        for backup_id in self.manifest_ids():
            try:
                oids = self._manifest_oids(backup_id)
            except NotFound:  # listed no more: dropped meanwhile (else not_served)
                continue
            except CairnError as exc:
                kind = Unavailable if isinstance(exc, Unavailable) else BackupInvalid
                raise kind(f"cannot tell which objects are in use: {exc.message}") from exc
            used.update(oids)
        return used

    def still_listed(self, ids: list[str]) -> list[str]:
        """Of manifests listed, then not found, those listed again (scan.not_served)."""
        return sorted(set(ids) & set(self.manifest_ids())) if ids else []

    # --- verify ----------------------------------------------------------------

    def verify(
        self,
        backup_id: str,
        on_progress: OnProgress | None = None,
        should_stop: ShouldStop | None = None,
        contents: bool = True,
        seq_now: int = 0,
    ) -> VerifyReport:
        """Reread every object of a backup. A bad manifest is reported as invalid;
        a backup that does not exist raises NotFound, and an encrypted one without
        its passphrase (or with a wrong one) PassphraseError. `contents=False`
        skips the Parquet checks (contents.py; for tests that store other bytes);
        `seq_now` is the server's sequence (what a restore there takes: seqs.py)."""
        try:
            m = self.read_manifest(backup_id)
        except PassphraseError:
            raise
        except BackupInvalid as exc:
            return VerifyReport(backup_id, is_valid=False, errors=[exc.message])
        return verify_objects(self.store, m, on_progress, should_stop, contents, self.scratch_dir,
                              seq_now)

