"""A real S3-compatible server for tests: moto's ThreadedMotoServer on 127.0.0.1.

No client is mocked: Cairn talks HTTP to it through pyarrow's S3FileSystem like
to any object store. Each test gets its own bucket, so one server serves a module."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
from moto.server import ThreadedMotoServer

_buckets = itertools.count()


@dataclass(frozen=True)
class S3Server:
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def target(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """A `[backup.targets.NAME]` table for `s3://bucket/prefix` on this server."""
        uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return {"uri": uri, "endpoint": self.endpoint, "access_key": "testing",
                "secret_key": "testing", "region": "us-east-1"}

    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{self.port}", scheme="http", region="us-east-1",
            access_key="testing", secret_key="testing", allow_bucket_creation=True,
        )

    def new_bucket(self) -> str:
        name = f"cairn-{os.getpid()}-{next(_buckets)}"
        self.fs().create_dir(name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Every key under bucket/prefix with its size, relative to the prefix."""
        base = f"{bucket}/{prefix}".rstrip("/")
        infos = self.fs().get_file_info(pafs.FileSelector(base, recursive=True,
                                                          allow_not_found=True))
        return {i.path[len(base) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}

    def read(self, path: str) -> bytes:
        with self.fs().open_input_file(path) as f:
            return bytes(f.read())

    def write(self, path: str, data: bytes) -> None:
        with self.fs().open_output_stream(path) as f:
            f.write(data)


def running() -> Iterator[S3Server]:
    """Start a server for the duration of the generator (a fixture body)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        yield S3Server(int(port))
    finally:
        server.stop()


class Relay:
    """A loopback TCP relay to the S3 server on `upstream`: every chunk a client
    sends waits `delay` seconds first (a real store's round trip), and with
    `record` every byte the client sent is kept (`headers` reads them)."""

    def __init__(self, upstream: int, delay: float = 0.0, record: bool = False) -> None:
        self.upstream, self.delay, self.record = upstream, delay, record
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.closed = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for s in (client, server):  # a relay adds no wait of its own (s3liar.py)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if from_client and self.record:
                    with self.lock:
                        self.sent += data
                if from_client and self.delay:
                    time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def headers(self, name: str) -> list[str]:
        with self.lock:
            found = re.findall(rb"(?im)^" + name.encode() + rb": *([^\r\n]*)\r$", bytes(self.sent))
        return [v.decode() for v in found]

    def close(self) -> None:
        self.closed = True
        self.listener.close()
