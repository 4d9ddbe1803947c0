"""A role user's share of the HTTP places (server/request_share.py). One role
user's `max_connections` requests whose 1-byte bodies never came held every
place until body_timeout_seconds: every other request, an admin's too, was
503 "too many connections". Now one role user's requests in progress are at
most a quarter of max_connections, role users' together all but three; one
more is 503 before its body is read, and its connection closed at once."""

from __future__ import annotations

import asyncio
import resource
import socket
from pathlib import Path
from typing import Any

from server.app import create_app
from server.config import Config
from tests.helpers import ServerProcess

TOKENS = [{"token": "t-root", "user": "root", "role": "admin"}] + [
    {"token": f"t-{u}", "user": u, "role": "user"} for u in ("mallory", "bob", "carol")]


async def _slow(client: Any, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request whose body (1 byte) never comes, its handler started (`100 Continue`)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + token.encode() + b"\r\n"
                 b"Expect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 100"), head
    return reader, writer


async def _refused(client: Any, token: str, expect: bool = True) -> str:
    """The answer to one more slow request: its 503 (with `Expect: 100-continue`
    instead of `100 Continue`), and then the connection closed at once."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + token.encode() + b"\r\n"
                 + (b"Expect: 100-continue\r\n" if expect else b"") + b"Content-Length: 1\r\n\r\n")
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
        body = await asyncio.wait_for(reader.readexactly(length), 30)
        if not expect:  # closed at once, not after the body timeout nor aiohttp's 10 s
            assert await asyncio.wait_for(reader.read(), 30) == b""
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head, head
    return body.decode()


async def _served(client: Any, token: str) -> None:
    resp = await client.post("/api/sql", json={"sql": "SELECT 7 AS n"},
                             headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["results"][0]["rows"] == [{"n": 7}]


async def test_one_role_users_slow_requests_hold_a_quarter_of_the_places(
        aiohttp_client: Any, cairn_config: Config) -> None:
    cairn_config.auth.mode = "token"
    cairn_config.auth.tokens = TOKENS
    cairn_config.server.max_connections = 8  # a quarter: 2; role users together: 5
    client = await aiohttp_client(create_app(cairn_config))
    held = [await _slow(client, "t-mallory") for _ in range(2)]
    try:
        for expect in (True, False):
            text = await _refused(client, "t-mallory", expect)
            assert "too many requests of user 'mallory'" in text, text
            assert "max_connections" in text, text
        for token in ("t-bob", "t-root"):  # the others are served meanwhile
            await _served(client, token)
        held += [await _slow(client, "t-bob") for _ in range(2)]
        held.append(await _slow(client, "t-carol"))
        text = await _refused(client, "t-carol")
        assert "kept for admins" in text, text
        await _served(client, "t-root")
        reader, writer = held.pop(0)  # one of mallory's ends: her share has room again
        writer.close()
        for _ in range(300):
            resp = await client.post("/api/sql", json={"sql": "SELECT 7 AS n"},
                                     headers={"Authorization": "Bearer t-mallory"})
            if resp.status == 200:
                break
            await asyncio.sleep(0.02)
        assert resp.status == 200, await resp.text()
    finally:
        for _, writer in held:
            writer.close()


def _slow_socket(port: int, token: str) -> tuple[socket.socket, bytes]:
    """A slow request on a socket: (the socket, its first answer's head)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /api/sql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + token.encode() + b"\r\n"
                 b"Expect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def test_the_shares_are_of_the_places_the_open_files_limit_leaves(tmp_path: Path) -> None:
    """With a hard limit of 1,024 open files the server takes some 300 HTTP
    connections, not max_connections' 1,000: the shares were of 1,000 (250
    for one role user, 997 for them all), so two role users' slow requests
    took every place and an admin was 503. They are of what is left now."""
    config = tmp_path / "cairn.toml"
    config.write_text('[auth]\nmode = "token"\n' + "".join(
        f'[[auth.tokens]]\ntoken = "{t["token"]}"\nuser = "{t["user"]}"\nrole = "{t["role"]}"\n'
        for t in TOKENS) + f'[backup]\nroots = ["{tmp_path / "b"}"]\n')
    proc = ServerProcess(tmp_path / "data", config=config)
    proc.args = [proc.args[0], "-c", "import os, resource, sys; "
                 "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)); "
                 "os.execv(sys.executable, sys.argv[1:])", *proc.args]
    proc.start()
    held: list[socket.socket] = []
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    try:
        for token in ("t-mallory", "t-bob"):
            for _ in range(1000):
                sock, head = _slow_socket(proc.port, token)
                if not head.startswith(b"HTTP/1.1 100"):
                    sock.close()
                    break
                held.append(sock)
            assert b"503" in head, head
        status, body = proc.post("SELECT 7 AS n", Authorization="Bearer t-root")
        assert status == 200 and body["results"][0]["rows"] == [{"n": 7}], (status, body)
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        proc.kill()
