"""SCRAM-SHA-256 (RFC 5802/7677), the server side, as PostgreSQL speaks it.

The tokens of `[auth]` are the passwords. One random salt per server start is
used for every token, so a client's proof can be checked against each token's
stored key without knowing in advance which token it holds (the client's user
name is not the token's: the token decides the identity)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

ITERATIONS = 4096
MECHANISM = "SCRAM-SHA-256"
MAX_NONCE = 256  # characters of a client nonce (libpq sends 24); it is echoed back


class ScramError(Exception):
    """The exchange is malformed or the proof is wrong (both: 28P01)."""


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


@dataclass(frozen=True)
class Secret:
    """What the server keeps for one password (never the password itself)."""

    stored_key: bytes
    server_key: bytes
    entry: dict[str, str]


class Verifier:
    """Keys for every token, derived once with this server's salt."""

    def __init__(self, entries: list[dict[str, str]]) -> None:
        self.salt = os.urandom(16)
        self.secrets = []
        for entry in entries:
            salted = hashlib.pbkdf2_hmac("sha256", entry["token"].encode(), self.salt, ITERATIONS)
            client_key = _hmac(salted, b"Client Key")
            self.secrets.append(Secret(hashlib.sha256(client_key).digest(),
                                       _hmac(salted, b"Server Key"), entry))


def _attrs(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise ScramError("malformed SCRAM message")
        out[key] = value
    return out


class Exchange:
    """One client's SCRAM conversation: first() then final()."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.gs2 = ""
        self.client_first_bare = ""
        self.server_first = ""
        self.nonce = ""

    def first(self, client_first: bytes) -> bytes:
        """client-first-message -> server-first-message."""
        try:
            text = client_first.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("SCRAM message is not UTF-8") from None
        flag, _, rest = text.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag not in ("n", "y") or authzid:
            raise ScramError("channel binding is not supported; use SCRAM-SHA-256")
        self.gs2 = f"{flag},{authzid},"
        attrs = _attrs(bare)
        client_nonce = attrs.get("r", "")
        if not client_nonce or not client_nonce.isprintable() or "," in client_nonce:
            raise ScramError("SCRAM client nonce is missing")
        if len(client_nonce) > MAX_NONCE:
            raise ScramError("SCRAM client nonce is too long")
        self.client_first_bare = bare
        self.nonce = client_nonce + base64.b64encode(os.urandom(18)).decode()
        salt = base64.b64encode(self.verifier.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={ITERATIONS}"
        return self.server_first.encode()

    def final(self, client_final: bytes) -> tuple[dict[str, str], bytes]:
        """client-final-message -> (the token's entry, server-final-message)."""
        try:
            text = client_final.decode("utf-8")
        except UnicodeDecodeError:
            raise ScramError("SCRAM message is not UTF-8") from None
        without_proof, sep, proof_part = text.rpartition(",p=")
        if not sep:
            raise ScramError("SCRAM proof is missing")
        attrs = _attrs(without_proof)
        if attrs.get("r") != self.nonce:
            raise ScramError("SCRAM nonce does not match")
        if attrs.get("c") != base64.b64encode(self.gs2.encode()).decode():
            raise ScramError("SCRAM channel binding does not match")
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            raise ScramError("SCRAM proof is not base64") from None
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        found: Secret | None = None
        for secret in self.verifier.secrets:  # every token, whatever matches first
            signature = _hmac(secret.stored_key, auth_message)
            if len(proof) != len(signature):
                continue
            client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
            if hmac.compare_digest(hashlib.sha256(client_key).digest(), secret.stored_key):
                found = secret
        if found is None:
            raise ScramError("wrong password")
        server_signature = _hmac(found.server_key, auth_message)
        return found.entry, b"v=" + base64.b64encode(server_signature)
