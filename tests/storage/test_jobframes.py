"""The server's reader of a job process's messages (storage/jobframes.py):
multiprocessing's frames, whole and in order however the bytes arrive, one
read for a small message, and the socket's timeout and end seen as such."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from storage import jobframes
from storage.jobframes import Frames


@pytest.fixture
def pair() -> Iterator[tuple[Frames, Connection, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 20_000))
    sender = Connection(os.dup(theirs.fileno()))
    try:
        yield Frames(ours.fileno()), sender, theirs
    finally:
        sender.close()
        theirs.close()
        ours.close()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of what each read returned."""
    got: list[int] = []
    real = os.read

    def counted(fd: int, n: int) -> bytes:
        data = real(fd, n)
        got.append(len(data))
        return data

    monkeypatch.setattr(jobframes.os, "read", counted)
    return got


def test_a_small_message_is_one_read(pair: tuple[Frames, Connection, socket.socket],
                                     reads: list[int]) -> None:
    frames, sender, _ = pair
    sender.send_bytes(b"progress")
    assert frames.next() == b"progress"
    assert len(reads) == 1  # Connection.poll + recv_bytes: three system calls


def test_several_messages_in_one_read_come_out_one_by_one(
        pair: tuple[Frames, Connection, socket.socket], reads: list[int]) -> None:
    frames, sender, _ = pair
    for m in (b"a", b"", b"ccc"):
        sender.send_bytes(m)
    assert [frames.next(), frames.next(), frames.next()] == [b"a", b"", b"ccc"]
    assert len(reads) == 1
    assert frames.next() is None  # nothing more: the read timed out


def test_a_large_message_and_one_split_anywhere_come_whole(
        pair: tuple[Frames, Connection, socket.socket]) -> None:
    frames, sender, theirs = pair
    big = os.urandom(3 * Frames.READ + 17)
    sender.send_bytes(big)
    got = None
    while got is None:
        got = frames.next()
    assert got == big
    framed = struct.pack("!i", 5) + b"hello" + struct.pack("!i", 3) + b"abc"
    for i in range(len(framed)):  # one byte at a time: the header split too
        theirs.sendall(framed[i:i + 1])
        out = frames.next()
        assert out == (b"hello" if i == 8 else b"abc" if i == len(framed) - 1 else None)


def test_the_long_header_of_multiprocessing_is_read(
        pair: tuple[Frames, Connection, socket.socket]) -> None:
    frames, _, theirs = pair
    theirs.sendall(struct.pack("!i", -1) + struct.pack("!Q", 4) + b"long")
    assert frames.next() == b"long"


def test_the_end_of_the_socket_is_eof(pair: tuple[Frames, Connection, socket.socket]) -> None:
    frames, sender, theirs = pair
    sender.send_bytes(b"last")
    sender.close()
    theirs.close()
    assert frames.next() == b"last"
    with pytest.raises(EOFError):
        frames.next()


def test_a_frame_announcing_an_absurd_length_asks_for_bounded_reads(
        pair: tuple[Frames, Connection, socket.socket], reads: list[int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    frames, _, theirs = pair
    asked: list[int] = []
    real = jobframes.os.read

    def asking(fd: int, n: int) -> bytes:
        asked.append(n)
        return real(fd, n)

    monkeypatch.setattr(jobframes.os, "read", asking)
    theirs.sendall(struct.pack("!i", -1) + struct.pack("!Q", 1 << 62) + b"x" * 100)
    assert frames.next() is None  # incomplete: the rest never comes
    assert frames.next() is None  # timed out, having asked for a bounded read
    assert max(asked) == Frames.MOST


def test_a_negative_length_ends_the_stream(pair: tuple[Frames, Connection, socket.socket]) -> None:
    frames, _, theirs = pair
    theirs.sendall(struct.pack("!i", -5) + b"abcdef")
    with pytest.raises(EOFError, match="length -5"):
        frames.next()


def test_small_buffers_go_inside_the_pickle_and_large_ones_apart(
        pair: tuple[Frames, Connection, socket.socket]) -> None:
    """send_framed: an Arrow table's buffers under IN_BAND_BYTES are copied
    into the pickle (one write for a small call: each write was a take of the
    server's GIL), a larger one is sent as it lies; the receiver's way
    (jobchild: the pickle, then as many buffers as it says) rebuilds both."""
    import pickle

    import pyarrow as pa

    frames, sender, _ = pair
    small = pa.table({"id": [1, 2], "v": ["a", None]})
    large = pa.table({"blob": [b"x" * jobframes.IN_BAND_BYTES]})
    sent: list[int] = []
    real = sender.send_bytes

    def counted(data: bytes) -> None:
        sent.append(len(data))
        real(data)

    sender.send_bytes = counted  # type: ignore[method-assign]
    got = []
    for msg in (("call", small), ("call", small, large)):
        sent.clear()
        jobframes.send_framed(sender, msg)
        head = None
        while head is None:
            head = frames.next()
        bufs = []
        for _ in range(int.from_bytes(head[:4], "little")):
            part = None
            while part is None:
                part = frames.next()
            bufs.append(part)
        got.append((len(sent), pickle.loads(memoryview(head)[4:], buffers=bufs)))
    (one, first), (two, second) = got
    assert one == 1 and first[1].equals(small)
    assert two == 2 and second[1].equals(small) and second[2].equals(large)
