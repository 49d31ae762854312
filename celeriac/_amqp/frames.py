"""Buffered frame reading for py-amqp connections, and the loop that handles what arrived.

Why: py-amqp's plain-TCP transport reads a frame as three ``recv`` calls of exactly the bytes
it needs next (the 7-byte header, the payload, the end octet), and ``drain_events(timeout)``
sets and restores the socket's timeout around every frame. A delivered message is three frames
(method, header, body), so a worker draining a queue made about twenty system calls per
message to read it. :func:`install` replaces the transport's ``read_frame`` with
:class:`FrameBuffer`'s, which reads up to 64 KiB per ``recv`` and cuts whole frames out of
what it holds, and the connection's ``drain_events`` with :func:`drain_events`, which handles
the frames already buffered without touching the socket and reads it (waiting with ``poll``,
not by changing the socket's timeout) only when no whole frame is buffered. Every wait on the
connection reads so: py-amqp's own (a channel waiting for a reply) and
:func:`celeriac._amqp.connection.wait_until`.

Rules:

* Only whole frames leave the buffer: a timeout or an error while a frame is incomplete keeps
  its bytes for the next read, as py-amqp's own reader does.
* Errors are py-amqp's: a closed socket raises ``OSError('Server unexpectedly closed
  connection')``, any other socket error marks the transport disconnected, a wrong frame-end
  octet raises ``amqp.exceptions.UnexpectedFrame``; a timeout (the wait's, or a receive
  timeout from ``read_timeout``) raises ``socket.timeout`` (``TimeoutError``).
* Only plain TCP transports are changed; TLS (``amqps://``) keeps py-amqp's reader, which
  already reads through the TLS layer's own buffer.
* Installed once per connection, right after it connected (the handshake is over and nothing
  is buffered), before any other thread uses it.
"""

from __future__ import annotations

import errno
import functools
import math
import select
import struct
import time
from typing import Any

#: bytes asked of the socket per ``recv``: below glibc's mmap threshold, so the buffer that
#: ``recv`` allocates is not mapped and unmapped each time
RECV_BYTES = 65536
_FRAME_END = 206
_HEADER = struct.Struct(">BHI")
_TRY_AGAIN = frozenset({errno.EAGAIN, errno.EINTR, errno.ENOENT, errno.EWOULDBLOCK})

#: (frame type, channel, payload)
Frame = tuple[int, int, bytes]


class FrameBuffer:
    """The bytes read from one transport's socket and not yet handed out as frames."""

    __slots__ = ("_buf", "_poll", "_pos", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._buf: bytes = bytes(transport._read_buffer)
        transport._read_buffer = b""
        self._pos = 0
        self._poll: Any = None

    def frame_ready(self) -> bool:
        """Whether a whole frame is buffered (reading it makes no system call)."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 8:
            return False
        size: int = _HEADER.unpack_from(buf, pos)[2]
        return len(buf) - pos >= size + 8

    def read_frame(self, unpack: Any = None) -> Frame:
        """The next frame (py-amqp's ``read_frame`` contract; see the module docstring)."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 7:
            buf, pos = self._fill(7)
        frame_type, channel, size = _HEADER.unpack_from(buf, pos)
        end = pos + 7 + size
        if len(buf) <= end:
            buf, pos = self._fill(size + 8)
            end = pos + 7 + size
        if buf[end] != _FRAME_END:
            import amqp

            self._pos = end + 1
            raise amqp.exceptions.UnexpectedFrame(
                f"Received frame_end {buf[end]:#04x} while expecting 0xce")
        self._pos = end + 1
        return frame_type, channel, buf[pos + 7:end]

    def receive(self, timeout_s: float | None) -> None:
        """Wait until the socket is readable (at most ``timeout_s``; None: without limit) and
        add one ``recv`` to the buffer; ``socket.timeout`` when nothing came in time."""
        if timeout_s is not None:
            if self._poll is None:
                self._poll = select.poll()
                self._poll.register(self._transport.sock, select.POLLIN)
            if not self._poll.poll(max(0, math.ceil(timeout_s * 1000.0))):
                raise TimeoutError("timed out")
        buf, pos = self._buf, self._pos
        self._fill(len(buf) - pos + 1)

    def _fill(self, wanted: int) -> tuple[bytes, int]:
        """Read until at least ``wanted`` bytes are buffered from the current position; what
        was read stays buffered whatever happens."""
        parts = [self._buf[self._pos:]]
        have = len(parts[0])
        transport = self._transport
        recv = transport.sock.recv
        try:
            while have < wanted:
                chunk = recv(RECV_BYTES)
                if not chunk:
                    raise OSError("Server unexpectedly closed connection")
                parts.append(chunk)
                have += len(chunk)
        except TimeoutError:
            raise
        except OSError as exc:
            if exc.errno in _TRY_AGAIN:  # a receive timeout (SO_RCVTIMEO: read_timeout)
                raise TimeoutError("timed out") from exc
            transport.connected = False
            raise
        finally:
            self._buf = parts[0] if len(parts) == 1 else b"".join(parts)
            self._pos = 0
        return self._buf, 0


def install(conn: Any) -> FrameBuffer | None:
    """Give ``conn``'s plain-TCP transport a :class:`FrameBuffer` (see the module docstring);
    None for other transports, which keep py-amqp's reader."""
    transport = conn.transport
    if type(transport).__name__ != "TCPTransport" or not hasattr(transport, "_read_buffer"):
        return None
    frames = FrameBuffer(transport)
    transport.read_frame = frames.read_frame
    conn._celeriac_frames = frames
    # every wait on the connection, py-amqp's own included, reads through the buffer
    conn.drain_events = functools.partial(drain_events, conn, frames)
    return frames


def drain_events(conn: Any, frames: FrameBuffer, timeout: float | None = None) -> None:
    """What ``conn.drain_events(timeout)`` does once :func:`install` ran: handle frames until
    one method is complete, those already buffered first with no system call; when no whole
    frame is buffered, wait until the socket is readable (at most ``timeout`` seconds in all;
    None: without limit) and read what it holds, the socket's timeout left as it is. Raises
    ``socket.timeout`` when no method completed in time, as py-amqp's does."""
    deadline_s = None if timeout is None else time.monotonic() + max(0.0, timeout)
    while True:
        while frames.frame_ready():
            if conn.blocking_read(None):  # None: the socket's timeout is not touched
                return
        frames.receive(None if deadline_s is None else deadline_s - time.monotonic())

