"""Length-prefixed frames on a pipe's file descriptor: what the prefork parent and its children
exchange.

A frame is a 4-byte big-endian length and that many bytes; a zero-length frame means "stop".
Several frames go in one ``write`` (a batch of jobs), and one ``read`` takes every frame that
has arrived (a run of outcomes), so the per-task cost is a slice of a system call, not two
system calls and a wake-up as with ``Connection.send_bytes``/``recv_bytes``.
"""

from __future__ import annotations

import os
import struct

_HEADER = struct.Struct("!I")
#: the most one read takes at once: a pipe's default capacity. Larger costs more, not less:
#: ``os.read`` allocates its buffer up front, and past glibc's mmap threshold (128 KiB) every
#: read maps and unmaps it (~13 us a read at 256 KiB against ~1 us at 64 KiB, measured here)
READ_CHUNK_BYTES = 64 * 1024
#: the frame that tells a child to exit once the jobs before it are done
STOP = _HEADER.pack(0)


def frame(payload: bytes) -> bytes:
    """``payload`` as one frame (never empty: an empty frame is :data:`STOP`)."""
    return _HEADER.pack(len(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (blocking); OSError when the other end is gone."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class FrameReader:
    """Splits what arrives on ``fd`` into frames; keeps a partial frame for the next read."""

    __slots__ = ("buffer", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()

    def read(self) -> list[bytes] | None:
        """One read (it blocks only when nothing has arrived), then every complete frame;
        None at end of file (the frames before it were returned by earlier calls)."""
        data = os.read(self.fd, READ_CHUNK_BYTES)
        if not data:
            return None
        self.buffer += data
        return self._split()

    def next_frames(self) -> list[bytes]:
        """At least one frame, reading (blocking) as long as it takes; EOFError at end of file."""
        while True:
            data = os.read(self.fd, READ_CHUNK_BYTES)
            if not data:
                raise EOFError
            self.buffer += data
            frames = self._split()
            if frames:
                return frames

    def _split(self) -> list[bytes]:
        buffer = self.buffer
        size_total = len(buffer)
        frames: list[bytes] = []
        pos = 0
        while size_total - pos >= 4:
            (size,) = _HEADER.unpack_from(buffer, pos)
            end = pos + 4 + size
            if end > size_total:
                break
            frames.append(bytes(buffer[pos + 4:end]))
            pos = end
        if pos:
            del buffer[:pos]
        return frames
