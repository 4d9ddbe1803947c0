"""Real `cairn serve` processes for the PostgreSQL protocol tests: one with
auth none, one with token auth and TLS (a self-signed certificate made here)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import ServerProcess, free_port

ADMIN_TOKEN = "adm-7f3c2a9e"
USER_TOKEN = "usr-41b8d0c6"


@dataclass
class PgServer:
    proc: ServerProcess
    port: int
    data_dir: Path

    def dsn(self, user: str = "alice", **extra: str) -> str:
        parts = {"host": "127.0.0.1", "port": str(self.port), "user": user, "dbname": "cairn",
                 "connect_timeout": "10", **extra}
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def url(self, user: str = "alice", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/cairn"


def _start(base: Path, config: str = "") -> Iterator[PgServer]:
    base.mkdir(parents=True, exist_ok=True)
    cfg = base / "cairn.toml"
    # Backups are throttled so that a test can cancel one while it runs.
    cfg.write_text(f'[backup]\nroots = ["{base / "backups"}"]\n'
                   "throttle_bytes_per_second = 150000\n" + config)
    for attempt in range(3):  # a free port may be taken by a test beside this one first
        port = free_port()
        try:
            proc = ServerProcess(base / "data", extra=["--pg-port", str(port)], config=cfg).start()
            break
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == 2:
                raise
    try:
        yield PgServer(proc, port, base / "data")
    finally:
        proc.kill()


@pytest.fixture(scope="session")
def pg_shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """The `pg` of every module that sets SHARE_PG = True, one a test process."""
    yield from _start(tmp_path_factory.mktemp("pg-shared"))


@pytest.fixture(scope="module")
def pg(request: pytest.FixtureRequest,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """`cairn serve` with auth none; the HTTP API is `pg.proc`. A module of its
    own, unless it sets SHARE_PG = True (it makes and reads namespaces no other
    module names, and reads nothing server-wide: no job, backup or namespace
    lists, no metrics, no faults): then the one `pg_shared` of this test process,
    a `cairn serve` start less (~1.4 s of CPU)."""
    if getattr(request.module, "SHARE_PG", False):
        yield request.getfixturevalue("pg_shared")
    else:
        yield from _start(tmp_path_factory.mktemp("pg"))


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pg_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """`cairn serve` with token auth and TLS."""
    base = tmp_path_factory.mktemp("pgtls")
    cert, key = self_signed(base)
    config = (
        '[auth]\nmode = "token"\n'
        f'[[auth.tokens]]\ntoken = "{ADMIN_TOKEN}"\nuser = "root"\nrole = "admin"\n'
        f'[[auth.tokens]]\ntoken = "{USER_TOKEN}"\nuser = "joe"\nrole = "user"\n'
        f'[pgwire]\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    )
    yield from _start(base, config)
