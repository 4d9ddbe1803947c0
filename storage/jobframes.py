"""The wire between the server and a job process (storage/jobproc.py): how a
call is sent, and how the process's messages are read."""

from __future__ import annotations

import logging
import os
import pickle
from multiprocessing.connection import Connection
from typing import Any


class Frames:
    """The messages a job process sends, each a frame as multiprocessing's
    Connection writes it (a 4-byte big-endian length, or -1 and an 8-byte
    one, then the bytes), read in one read a message or several while they
    are small. Connection.poll and recv_bytes took three (the poll, the
    length, the bytes): each a system call that lets the server's GIL go and
    takes it back, beside the statements on the event loop (a few takes a
    BACKUP, bench/gil_takes.py). The socket's SO_RCVTIMEO bounds each read."""

    READ = 1 << 16  # bytes a read asks for, at least
    MOST = 1 << 24  # and at most: a frame's length is the sender's word, not an allocation

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.want = 0  # the bytes the frame begun in `buf` needs in all

    def next(self) -> bytes | None:
        """The next whole frame, reading once if none is here yet; None if
        the read timed out or the frame is still incomplete. EOFError when
        the process closed its end."""
        frame = self._take()
        if frame is not None:
            return frame
        try:
            data = os.read(self.fd, min(self.MOST, max(self.READ, self.want - len(self.buf))))
        except BlockingIOError:  # SO_RCVTIMEO: nothing came meanwhile
            return None
        if not data:
            raise EOFError("the job process closed its socket")
        self.buf += data
        return self._take()

    def _take(self) -> bytes | None:
        buf = self.buf
        if len(buf) < 4:
            return None
        size, start = int.from_bytes(buf[:4], "big", signed=True), 4
        if size == -1:
            if len(buf) < 12:
                return None
            size, start = int.from_bytes(buf[4:12], "big"), 12
        elif size < 0:  # not a frame multiprocessing writes: the stream is lost
            raise EOFError(f"a job process sent a frame of length {size}")
        end = start + size
        if len(buf) < end:
            self.want = end
            return None
        frame = bytes(buf[start:end])
        del buf[:end]
        self.want = 0
        return frame


IN_BAND_BYTES = 64 << 10  # a smaller buffer goes inside the pickle (send_framed)


def send_framed(conn: Connection, msg: Any) -> None:
    """`msg` to a job process (read by storage/jobchild.py): pickled with its large
    buffers out of band, each then sent as it lies in memory. An Arrow table
    among a call's arguments is not copied into the pickle: in band, 19 MB
    took 18 ms with the GIL held, and as much memory again. A buffer under
    IN_BAND_BYTES is copied into the pickle all the same: sent apart, each
    was a write of its own, and each write a take of the server's GIL (a
    one-row table is ~8 buffers). (A BACKUP's buffered rows past
    snapshot.INLINE_BYTES go through a file instead, `BufferExport.spill`:
    through the socket they went in many small writes, as fast as the job
    process read them.)"""
    bufs: list[pickle.PickleBuffer] = []

    def apart(buf: pickle.PickleBuffer) -> bool:
        if buf.raw().nbytes < IN_BAND_BYTES:
            return True  # in band
        bufs.append(buf)
        return False

    data = pickle.dumps(msg, protocol=5, buffer_callback=apart)
    conn.send_bytes(len(bufs).to_bytes(4, "little") + data)
    for buf in bufs:
        conn.send_bytes(buf.raw())


def relog(name: str, level: int, text: str) -> None:
    """A job process's log record, logged here (it sends each as a message)."""
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        logger.handle(logging.makeLogRecord({
            "name": name, "levelno": level, "levelname": logging.getLevelName(level),
            "msg": text, "args": None, "processName": "job process"}))


def portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
