"""Encryption: keys derived from a passphrase, keyed object names, and AES-256-GCM
in frames so that no object is ever held whole in memory.

A key file (`keys/<key_id>.json`) keeps the scrypt salt and parameters, so the
same passphrase always gives the same key in one target: the same keyed object
names, hence dedup across encrypted backups. It also keeps a key check (an HMAC
of a constant under the derived key), which tells a wrong passphrase apart from
damaged data. The passphrase itself is never stored, logged or put in a message.

Container of one encrypted stream (an object or a manifest body):

    header  = b"CAIRNAE1" | payload (1 byte: 0 raw, 1 zstd) | 3 zero bytes | nonce prefix (8 random bytes)
    frames  = AES-256-GCM(plaintext[i*FRAME:(i+1)*FRAME]) + 16-byte tag, for i = 0, 1, …

Frame i uses nonce = prefix | i (4 bytes, big-endian) and associated data
header | binding (32 bytes: the object's name) | last (1 byte: 1 for the final
frame). Reordered, dropped, appended or swapped frames or objects fail to
authenticate; a stream always ends with a final frame (possibly empty)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from catalog.diskerrors import read_shortage
from catalog.errors import BackupInvalid, InvalidArgument

from . import records
from .layout import utc_now
from .transfer import Writable

CIPHER = "aes-256-gcm"
KDF = "scrypt"
FRAME = 1 << 20
TAG = 16
MAGIC = b"CAIRNAE1"
HEADER_SIZE = len(MAGIC) + 1 + 3 + 8
MAX_FRAMES = 1 << 32

# scrypt cost for new key files (~32 MiB, ~0.1 s here); readers accept up to the caps.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
# What a reader will run for a key file it finds in a target (anyone who can write
# there can plant one, or point a manifest's `key` at one): scrypt takes
# 128 * n * r bytes and time in n * r * p. n = 2^20, r = 32 alone, each within its
# own range, took 4.2 GB and 44 s (p = 16: some 12 minutes) in one job thread.
# 8 times what Cairn writes: 256 MiB and ~2 s at most.
SCRYPT_MAX_MEMORY = 256 << 20  # 128 * n * r
SCRYPT_MAX_WORK = 1 << 21  # n * r * p


class PassphraseError(BackupInvalid):
    """BACKUP_INVALID because of the passphrase (missing or wrong), not the data.
    Verify raises it rather than reporting the backup as damaged."""


class NotEncrypted(BackupInvalid):
    """BACKUP_INVALID: a plain backup or segment read with an encryption_passphrase
    (anyone could have written it without the key). VERIFY ARCHIVE tells a window
    so written from damage: it is not checked with that passphrase."""


@dataclass(frozen=True, repr=False)
class Keys:
    """The subkeys of one key file. `repr` shows the key id only."""

    key_id: str
    cipher: AESGCM = field(compare=False)
    names: bytes = field(compare=False)  # HMAC key for object names

    def __repr__(self) -> str:
        return f"Keys({self.key_id!r})"


def is_key_id(name: str) -> bool:
    return len(name) == 32 and all(c in "0123456789abcdef" for c in name)


def _subkey(master: bytes, purpose: str) -> bytes:
    return hmac.new(master, f"cairn-backup/{purpose}".encode(), hashlib.sha256).digest()


# Master keys already derived in this process, by a keyed digest of (passphrase,
# salt, n, r, p) under a secret of the process: scrypt is deterministic, so a hit
# is the key scrypt would give again (~0.1 s of CPU each; every statement on an
# encrypted target opens a new Repository, whose KeyRing derived it again). Only
# a key its key file's check accepted, or a new key file's, is kept; a wrong
# passphrase runs scrypt every time, as before.
_MASTERS: OrderedDict[bytes, bytes] = OrderedDict()
_MASTERS_MAX = 64
_MASTERS_LOCK = threading.Lock()
_MASTERS_SECRET = os.urandom(32)


def _master_id(passphrase: str, doc: dict[str, Any]) -> bytes:
    params = json.dumps([doc["salt"], doc["n"], doc["r"], doc["p"]]).encode()
    return hmac.digest(_MASTERS_SECRET, params + b"\0" + passphrase.encode("utf-8"), "sha256")


def _remembered(master_id: bytes) -> bytes | None:
    with _MASTERS_LOCK:
        master = _MASTERS.get(master_id)
        if master is not None:
            _MASTERS.move_to_end(master_id)
        return master


def _remember(master_id: bytes, master: bytes) -> None:
    with _MASTERS_LOCK:
        _MASTERS[master_id] = master
        _MASTERS.move_to_end(master_id)
        while len(_MASTERS) > _MASTERS_MAX:
            _MASTERS.popitem(last=False)


def _derive(passphrase: str, doc: dict[str, Any], key_id: str = "") -> bytes:
    """The master key. Within the caps parse_key_file holds a key file to,
    OpenSSL runs scrypt: its MemoryError is this process short of the memory
    (128 * n * r bytes, 32 MiB for Cairn's own), 503 naming it, not a damaged
    key file. Until 2026-12-08 it was BackupInvalid: a VERIFY run in a job
    process short of memory called a sound backup invalid ("scrypt refused a
    key file's parameters (Not enough memory …)"), where a RESTORE of it,
    its key derived in the server, restored it."""
    kdf = Scrypt(salt=bytes.fromhex(doc["salt"]), length=32, n=doc["n"], r=doc["r"], p=doc["p"])
    try:
        return kdf.derive(passphrase.encode("utf-8"))
    except MemoryError as exc:
        what = f"key file '{key_id}'" if key_id else "a new key file"
        raise read_shortage(exc, f"cannot derive the key of {what} (scrypt takes "
                                 f"{128 * doc['n'] * doc['r'] >> 20} MiB)") or exc from None
    except ValueError as exc:  # parameters OpenSSL will not run
        raise BackupInvalid(f"scrypt refused a key file's parameters ({exc})") from None


def new_key_file(passphrase: str) -> tuple[str, bytes, Keys]:
    """A fresh key id, the key file's bytes, and the keys it yields."""
    check_passphrase(passphrase)
    doc: dict[str, Any] = {
        "format": "cairn-backup-key",
        "cipher": CIPHER,
        "kdf": KDF,
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": os.urandom(16).hex(),
        "created_at": utc_now(),
    }
    master = _derive(passphrase, doc)
    _remember(_master_id(passphrase, doc), master)
    doc["key_check"] = _subkey(master, "key-check").hex()
    doc["file_sha256"] = _key_file_sum(doc)
    key_id = os.urandom(16).hex()
    data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
    return key_id, data, _keys(key_id, master)


def _keys(key_id: str, master: bytes) -> Keys:
    return Keys(key_id, AESGCM(_subkey(master, CIPHER)), _subkey(master, "object-names"))


def parse_key_file(data: bytes, key_id: str, uri: str) -> dict[str, Any]:
    """A checked key file; BackupInvalid when damaged or beyond what this Cairn accepts.

    A key file carries `file_sha256` over its other fields, so a flipped byte in
    its salt or key check is reported as damage, not as a wrong passphrase."""
    where = f"key file '{key_id}' of backup target '{uri}'"
    try:
        record = records.decode(data, records.KeyFile, where)
    except BackupInvalid as exc:
        if exc.message.endswith(("`$.n`", "`$.r`", "`$.p`")):  # say what a reader would not run
            raise BackupInvalid(f"{where} has scrypt parameters out of range: {exc.message}") from None
        raise
    if record.n & (record.n - 1):
        raise BackupInvalid(f"{where} has scrypt parameters out of range: n is not a power of two")
    if record.n >= 1 << (16 * record.r):  # scrypt's own bound: r = 1 and n = 2^17 was a 500
        raise BackupInvalid(f"{where} has scrypt parameters out of range: n = {record.n} "
                            f"needs r above {record.r} (n < 2^(16 r))")
    memory, work = 128 * record.n * record.r, record.n * record.r * record.p
    if memory > SCRYPT_MAX_MEMORY or work > SCRYPT_MAX_WORK:
        raise BackupInvalid(
            f"{where} has scrypt parameters out of range: n = {record.n}, r = {record.r}, "
            f"p = {record.p} would take {memory} bytes and n * r * p = {work} (at most "
            f"{SCRYPT_MAX_MEMORY} bytes and {SCRYPT_MAX_WORK})"
        )
    doc = msgspec.structs.asdict(record)
    stored = doc.pop("file_sha256")
    if stored is not None and stored != _key_file_sum(doc):
        raise BackupInvalid(f"{where} is corrupt: file_sha256 mismatch")
    return doc


def _key_file_sum(doc: dict[str, Any]) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def unlock(doc: dict[str, Any], key_id: str, passphrase: str) -> Keys | None:
    """The keys of a parsed key file, or None when the passphrase is not its passphrase."""
    master_id = _master_id(passphrase, doc)
    master = _remembered(master_id)
    if master is None:
        master = _derive(passphrase, doc, key_id)
    if not hmac.compare_digest(_subkey(master, "key-check").hex(), doc["key_check"]):
        return None
    _remember(master_id, master)
    return _keys(key_id, master)


def check_passphrase(passphrase: object) -> str:
    if not isinstance(passphrase, str) or not passphrase:
        raise InvalidArgument("encryption_passphrase must be a non-empty string")
    return passphrase


# --- names -------------------------------------------------------------------------


def keyed_name(key: bytes, encoding: str, sha256: str) -> str:
    """HMAC-SHA256 of `encoding:sha256`: computable from the plaintext sha256 by
    whoever holds the key, and revealing nothing about it to anyone else."""
    return hmac.digest(key, f"{encoding}:{sha256}".encode(), "sha256").hex()  # one C call


def binding_for_manifest(backup_id: str) -> bytes:
    return hashlib.sha256(f"cairn-backup manifest {backup_id}".encode()).digest()


# --- frames ------------------------------------------------------------------------


def stored_size(plain_size: int) -> int:
    """Bytes an encrypted stream of `plain_size` plaintext bytes takes (before any zstd)."""
    frames = max(1, -(-plain_size // FRAME))
    return HEADER_SIZE + plain_size + TAG * frames


class FrameWriter:
    """Encrypts whatever is written to it into `out`, one frame per FRAME bytes.
    `finish()` writes the final frame; until then nothing is complete."""

    def __init__(self, keys: Keys, binding: bytes, payload: int, out: Writable) -> None:
        self._cipher = keys.cipher
        self._prefix = os.urandom(8)
        self._header = MAGIC + bytes([payload]) + b"\0\0\0" + self._prefix
        self._aad = self._header + binding
        self._out = out
        self._buffer = bytearray()
        self._counter = 0
        out.write(self._header)

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._buffer += view
        # A frame goes out only once more data follows, so the final one is known.
        if len(self._buffer) > FRAME:
            end = (len(self._buffer) - 1) // FRAME * FRAME
            chunk = memoryview(self._buffer)
            for start in range(0, end, FRAME):
                self._emit(chunk[start : start + FRAME], last=False)
            chunk.release()
            del self._buffer[:end]
        return view.nbytes

    def finish(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer = bytearray()

    def _emit(self, plain: Any, last: bool) -> None:
        if self._counter >= MAX_FRAMES:
            raise InvalidArgument("object too large to encrypt")
        nonce = self._prefix + self._counter.to_bytes(4, "big")
        self._out.write(self._cipher.encrypt(nonce, plain, self._aad + (b"\1" if last else b"\0")))
        self._counter += 1


def read_exact(src: Any, n: int) -> bytes:
    """Up to `n` bytes, fewer only at the end of the stream."""
    parts: list[bytes] = []
    left = n
    while left:
        block = src.read(left)
        if not block:
            break
        parts.append(bytes(block))
        left -= len(block)
    return b"".join(parts)


def open_frames(keys: Keys, binding: bytes, src: Any, what: str) -> tuple[int, Iterator[bytes]]:
    """Check the header of an encrypted stream; returns its payload code and an
    iterator of authenticated plaintext frames. Any failure is BackupInvalid."""
    header = read_exact(src, HEADER_SIZE)
    if len(header) != HEADER_SIZE or not header.startswith(MAGIC) or header[9:12] != b"\0\0\0":
        raise BackupInvalid(f"{what} is corrupt: not an encrypted Cairn stream")
    payload = header[8]
    if payload not in (0, 1):
        raise BackupInvalid(f"{what} is corrupt: unknown payload encoding {payload}")
    return payload, _frames(keys, binding, header, src, what)


def _frames(keys: Keys, binding: bytes, header: bytes, src: Any, what: str) -> Iterator[bytes]:
    aad = header + binding
    prefix = header[12:]
    size = FRAME + TAG
    pending = read_exact(src, size)
    counter = 0
    while True:
        following = read_exact(src, size) if len(pending) == size else b""
        last = not following
        if len(pending) < TAG:
            raise BackupInvalid(f"{what} is corrupt: truncated")
        nonce = prefix + counter.to_bytes(4, "big")
        try:
            plain = keys.cipher.decrypt(nonce, pending, aad + (b"\1" if last else b"\0"))
        except InvalidTag:
            raise BackupInvalid(
                f"{what} is corrupt: frame {counter} does not authenticate"
            ) from None
        yield plain
        if last:
            return
        pending = following
        counter += 1
