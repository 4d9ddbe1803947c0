"""The key files of one target, opened with one passphrase.

A writer uses the first key file (by id) that its passphrase opens and creates
one only when none does, so every backup made with one passphrase shares one key
and its objects dedup. Two writers racing to create the first key file each
write their own (ids are random): both sets of backups stay readable, they just
do not share objects. Key files are written once and never changed, so unlike
`config.json` there is nothing to lose in a race."""

from __future__ import annotations

import logging
from collections.abc import Callable

from catalog.errors import BackupInvalid

from .crypto import (
    Keys,
    PassphraseError,
    check_passphrase,
    new_key_file,
    parse_key_file,
    unlock,
)

ReadKey = Callable[[str], bytes | None]
ListKeys = Callable[[], list[str]]
WriteKey = Callable[[str, bytes], None]

log = logging.getLogger(__name__)


class KeyRing:
    """Keys derived from one passphrase (or none), cached per key file: scrypt
    runs at most once per key file and passphrase."""

    def __init__(
        self, passphrase: str | None, uri: str, read: ReadKey, list_ids: ListKeys, write: WriteKey
    ) -> None:
        self._passphrase = None if passphrase is None else check_passphrase(passphrase)
        self._uri = uri
        self._read = read
        self._list_ids = list_ids
        self._write = write
        self._opened: dict[str, Keys | None] = {}  # None: the passphrase does not open it
        self._writer: Keys | None = None
        self._files: dict[str, bytes] = {}  # the key files read or written
        self.writer_file: tuple[str, bytes] | None = None  # the one `for_writing` chose
        self._listed: set[str] | None = None  # key ids in the target (`_present`)
        self._relisted: set[str] = set()  # ids listed again for: once each

    def __repr__(self) -> str:
        return f"KeyRing({self._uri!r}, passphrase={'***' if self._passphrase else None})"

    def __getstate__(self) -> dict[str, object]:
        """Pickled (a job process receives the Repository so) without the keys
        opened: their ciphers do not pickle ("cannot pickle 'AESGCM'" failed
        every base an encrypted archive took after its first segment), and the
        receiver reads the key files again, as they are in the target then."""
        return {**self.__dict__, "_opened": {}, "_writer": None, "_files": {},
                "writer_file": None, "_listed": None, "_relisted": set()}

    @property
    def has_passphrase(self) -> bool:
        return self._passphrase is not None

    @property
    def unlocked(self) -> list[Keys]:
        return [k for k in self._opened.values() if k is not None]

    def open(self, key_id: str, what: str) -> Keys | None:
        """The keys of `key_id`; None without a passphrase. PassphraseError when the
        passphrase does not open it, BackupInvalid when the key file is damaged,
        or missing: without a passphrase too (a key file deleted from the target
        left every backup made with it listed as whole, which no passphrase can
        open again: its salt was only there)."""
        if self._passphrase is None:
            if key_id not in self._present(key_id):
                raise BackupInvalid(f"key file '{key_id}' of backup target '{self._uri}' is "
                                    f"missing: {what} cannot be decrypted with any passphrase")
            return None
        keys = self._try(key_id)
        if keys is None:
            raise PassphraseError(
                f"wrong encryption_passphrase for {what}: it does not open the key it was "
                "encrypted with"
            )
        return keys

    def _present(self, key_id: str) -> set[str]:
        """The key files in the target: listed once, and again for an id not
        seen (one written since by another server)."""
        if self._listed is None or key_id not in self._listed and key_id not in self._relisted:
            self._listed = set(self._list_ids())
            self._relisted.add(key_id)
        return self._listed

    def for_writing(self) -> Keys:
        """The key new objects and manifests are encrypted with."""
        if self._passphrase is None:
            raise ValueError("no passphrase")
        if self._writer is None:
            for key_id in sorted(self._list_ids()):
                try:
                    keys = self._try(key_id)
                except BackupInvalid as exc:  # its backups are lost anyway; do not block new ones
                    log.warning("skipping unreadable key file: %s", exc.message)
                    continue
                if keys is not None:
                    self._writer, self.writer_file = keys, (key_id, self._files[key_id])
                    break
            else:
                key_id, data, keys = new_key_file(self._passphrase)
                self._write(key_id, data)
                self._opened[key_id] = keys
                self._writer, self.writer_file = keys, (key_id, data)
        return self._writer

    def _try(self, key_id: str) -> Keys | None:
        if key_id not in self._opened:
            assert self._passphrase is not None
            data = self._read(key_id)
            if data is None:
                raise BackupInvalid(f"key file '{key_id}' of backup target '{self._uri}' is missing")
            doc = parse_key_file(data, key_id, self._uri)
            self._opened[key_id] = unlock(doc, key_id, self._passphrase)
            self._files[key_id] = data
        return self._opened[key_id]
