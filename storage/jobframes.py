"""How the server reads a job process's messages (storage/jobproc.py)."""

from __future__ import annotations

import os


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
        end = start + size
        if len(buf) < end:
            self.want = end
            return None
        frame = bytes(buf[start:end])
        del buf[:end]
        self.want = 0
        return frame
