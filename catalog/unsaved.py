"""Records the catalog could not write while its disk refused writes, kept
in memory (`Catalog.keep`) or forgotten there (`Catalog.forget`): reads see
them as written, and the next write that succeeds writes them too (the
catalog's `Batch.commit`). For what a job did past its point of no return,
and the states a failure leaves, so they read true while the disk is full; a
restart before the disk takes writes again loses them (start-up's recovery
then looks at the job's row as the disk has it)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

from rocksdict import Rdict, WriteBatch

from .diskerrors import DataDirUnavailable

if TYPE_CHECKING:
    from .records import Record


class Unsaved:
    """The part of `Catalog` that keeps records in memory."""

    _unsaved: dict[tuple[str, bytes], bytes | None]  # (family, key) -> value; None: forgotten
    _lock: threading.RLock
    _db: Rdict
    writes: Counter[str]

    def put(self, record: Record) -> None:
        raise NotImplementedError

    def delete(self, kind: type[Record], key: str) -> None:
        raise NotImplementedError

    def _handle(self, family: str) -> Any:
        raise NotImplementedError

    def keep(self, record: Record) -> None:
        """Put `record`, or, while the disk refuses writes, keep it in memory:
        reads see it, and the next write that succeeds writes it too. For the
        states a failure itself leaves (a job that failed, an archive that
        stopped shipping) and what a job did past its point of no return (a
        backup whose manifest landed), so that they read true while the disk
        is full; a restart before the disk takes writes again forgets them."""
        try:
            self.put(record)
        except DataDirUnavailable:
            with self._lock:
                self._unsaved[(record.FAMILY, record.key().encode())] = record.dumps()
                self.writes[record.FAMILY] += 1

    def forget(self, kind: type[Record], key: str) -> None:
        """Delete the record `key`, or, while the disk refuses writes, forget
        it in memory: reads no longer see it, and the next write that succeeds
        deletes it too (`keep`'s counterpart: a backup's record once a drop
        removed its manifest from the target)."""
        try:
            self.delete(kind, key)
        except DataDirUnavailable:
            with self._lock:
                self._unsaved[(kind.FAMILY, key.encode())] = None
                self.writes[kind.FAMILY] += 1

    def _save_unsaved(self) -> None:
        """Write the records `keep` kept in memory (each forgotten once written,
        unless it was kept anew meanwhile)."""
        with self._lock:
            kept = dict(self._unsaved)
            wb = WriteBatch(raw_mode=True)
            for (family, key), value in kept.items():
                if value is None:
                    wb.delete(key, self._handle(family))
                else:
                    wb.put(key, value, self._handle(family))
            try:
                self._db.write(wb)
            except Exception:  # still refused: kept for the next write  # noqa: BLE001
                return
            for k, value in kept.items():
                if k in self._unsaved and self._unsaved[k] == value:
                    del self._unsaved[k]

    def _kept_in(self, family: str, prefix: bytes, first: bytes) -> dict[bytes, bytes | None]:
        with self._lock:
            return {key: value for (fam, key), value in self._unsaved.items()
                    if fam == family and key.startswith(prefix) and key >= first}

