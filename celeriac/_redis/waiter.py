"""Waiting for result records: one RESP3 connection per process, read by a waiting thread.

A wait sends ``SUBSCRIBE <channel>`` and ``MGET <record> <state key>`` in one write (RESP3 lets
a subscribed connection run commands; Redis 6.2 is the floor anyway), then reads: the MGET
reply finds a record stored before the subscription took effect, a published message one
stored after it. So a lone ``AsyncResult.get()`` costs one round trip before it sleeps on the
socket, and wakes in the thread that waits, with no thread hop.

There is no thread of its own. Rules:

* Whoever holds ``_reading`` (the reader) reads the socket for every waiter: it hands each
  record to its waiters and sets their events, and stops once its own record came or its
  deadline passed. It then wakes one other waiter, which becomes the next reader.
* Any thread may write (under ``_lock``); replies to commands come back in the order the
  commands were written, so ``_replies`` names the waiter of each MGET, in order. Pushes
  (subscribe confirmations, messages) are told apart by their RESP3 type.
* A write that fails marks the connection broken and never raises: the reader reconnects
  (with backoff, up to its deadline), subscribes again to every channel and reads every
  waiter's record once more, since a store may have happened meanwhile.
* A waiter leaving unsubscribes its channel once no one else waits on it (without waiting
  for the confirmation; later messages on it are ignored).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis

from celeriac._redis.client import RedisConnection, pack_commands, readable
from celeriac._utils.pid import PROCESS

#: longest a reader sleeps on the socket before it looks at its deadline and state again
_READ_SLICE_S = 1.0
#: longest a waiter sleeps before it checks whether the socket has no reader (a safety net:
#: the leaving reader wakes one waiter, and that waiter may be leaving too)
_FOLLOW_SLICE_S = 0.5
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0


class Slot:
    """One waiter: its channel, the keys its record is read from, and what it got."""

    __slots__ = ("channel", "done", "error", "event", "keys", "payload")

    def __init__(self, channel: bytes, keys: tuple[str, str]) -> None:
        self.channel = channel
        self.keys = keys
        self.event = threading.Event()
        self.done = False
        self.payload: bytes | None = None
        #: an error reply to this waiter's read (the record's key holds something else)
        self.error: str | None = None


class Waiter:
    """The result waits of one process on one Redis database (see the module docstring).

    ``ready_record(payload, side)`` is the record when the MGET pair says it is ready, else
    None; ``is_ready(payload)`` says whether a published record is ready (None: cannot tell,
    read the key again)."""

    def __init__(
        self,
        conn: RedisConnection,
        ready_record: Callable[[bytes | None, bytes | None], bytes | None],
        is_ready: Callable[[bytes], bool | None],
    ) -> None:
        self.pid = PROCESS.pid
        self._conn = conn
        self._ready_record = ready_record
        self._is_ready = is_ready
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self._slots: dict[bytes, set[Slot]] = {}
        self._replies: collections.deque[Slot] = collections.deque()
        self._connection: Any = None
        self._reader: Any = None
        self._broken = True
        self._closed = False

    def wait(self, channel: bytes, keys: tuple[str, str], timeout_s: float | None
             ) -> bytes | None:
        """The ready record published on ``channel`` (stored under ``keys[0]``, its state
        maybe under ``keys[1]``), or None once ``timeout_s`` passed (None: no limit).
        Raises redis.ResponseError when Redis refuses the read (an ACL without MGET)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        slot = Slot(channel, keys)
        with self._lock:
            fresh = channel not in self._slots
            self._slots.setdefault(channel, set()).add(slot)
            commands: list[tuple[Any, ...]] = [("SUBSCRIBE", channel)] if fresh else []
            self._send_locked([*commands, ("MGET", *keys)], [slot])
        try:
            self._wait_for(slot, deadline)
        finally:
            self._leave(slot)
        if slot.error is not None:
            raise redis.ResponseError(slot.error)
        return slot.payload

    def _wait_for(self, slot: Slot, deadline: float | None) -> None:
        while not slot.done and not self._closed:
            if self._reading.acquire(blocking=False):
                try:
                    self._read_for(slot, deadline)
                finally:
                    self._reading.release()
                    self._wake_next_reader(slot)
                if slot.done:
                    return
            left = _left(deadline)
            if left is not None and left <= 0:
                return
            slot.event.wait(_FOLLOW_SLICE_S if left is None else min(left, _FOLLOW_SLICE_S))
            slot.event.clear()

    def _leave(self, slot: Slot) -> None:
        with self._lock:
            waiting = self._slots.get(slot.channel)
            if waiting is not None:
                waiting.discard(slot)
                if not waiting:
                    del self._slots[slot.channel]
                    if not self._broken:
                        self._send_locked([("UNSUBSCRIBE", slot.channel)], [])
        self._wake_next_reader(slot)

    def _wake_next_reader(self, leaving: Slot) -> None:
        """Wake one waiter (not ``leaving``) to read, if the socket has no reader now."""
        if self._reading.locked():
            return
        with self._lock:
            for slots in self._slots.values():
                for other in slots:
                    if other is not leaving and not other.done:
                        other.event.set()
                        return

    # -- the reader ------------------------------------------------------------------------------
    def _read_for(self, slot: Slot, deadline: float | None) -> None:
        """Read for every waiter until ``slot`` is done or ``deadline`` passed."""
        backoff_s = _BACKOFF_FIRST_S
        while not slot.done and not self._closed:
            left = _left(deadline)
            if left is not None and left <= 0:
                return
            try:
                if self._broken:
                    self._reconnect()
                self._read_some(_READ_SLICE_S if left is None else min(left, _READ_SLICE_S))
                backoff_s = _BACKOFF_FIRST_S
            except (OSError, redis.ConnectionError, redis.TimeoutError):
                self._drop()
                pause_s = backoff_s if left is None else min(backoff_s, left)
                time.sleep(max(pause_s, 0.0))
                backoff_s = min(backoff_s * 2, _BACKOFF_MAX_S)

    def _read_some(self, timeout_s: float) -> None:
        sock = self._connection._sock
        if sock is None:
            raise redis.ConnectionError("result wait connection closed")
        pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted
        if not (pending is not None and pending()) and not readable(sock.fileno(), timeout_s):
            return
        data = sock.recv(1 << 16)
        if not data:
            raise redis.ConnectionError("Redis closed the result wait connection")
        self._reader.feed(data)
        reply = self._reader.gets()
        while reply is not False:
            self._dispatch(reply)
            reply = self._reader.gets()

    def _dispatch(self, reply: Any) -> None:
        if isinstance(reply, hiredis.PushNotification):
            if len(reply) >= 3 and reply[0] == b"message":
                self._on_message(reply[1], reply[2])
            return  # subscribe / unsubscribe confirmations
        with self._lock:
            slot = self._replies.popleft() if self._replies else None
        if slot is None or slot.done:
            return
        if isinstance(reply, hiredis.ReplyError):
            slot.error = str(reply)
            _finish(slot, None)
        elif isinstance(reply, list) and len(reply) == 2:
            payload = self._ready_record(reply[0], reply[1])
            if payload is not None:
                _finish(slot, payload)

    def _on_message(self, channel: bytes, payload: bytes) -> None:
        ready = self._is_ready(payload)
        if ready is False:
            return
        with self._lock:
            waiting = [s for s in self._slots.get(channel, ()) if not s.done]
            if ready is None and waiting:  # a state we cannot read from the message: look
                self._send_locked([("MGET", *s.keys) for s in waiting], waiting)
                return
        for slot in waiting:
            _finish(slot, payload)

    # -- the connection --------------------------------------------------------------------------
    def _send_locked(self, commands: Sequence[tuple[Any, ...]], readers: Sequence[Slot]) -> None:
        """Write ``commands`` (the MGETs among them last, one per slot of ``readers``); never
        raises: a broken connection is the reader's to mend, and it reads every record again.
        The caller holds ``_lock``."""
        if self._broken or self._connection is None:
            return
        try:
            self._connection._sock.sendall(pack_commands(commands))
        except (OSError, AttributeError):
            self._broken = True
            return
        self._replies.extend(readers)

    def _reconnect(self) -> None:
        """A fresh RESP3 connection, subscribed to every waited channel, with every waiter's
        record read again. Only the reader calls this."""
        self._drop()
        connection: Any = self._conn.base.connection_pool.make_connection()
        connection.connect()
        reader = hiredis.Reader()
        sock = connection._sock
        sock.sendall(pack_commands([("HELLO", 3)]))
        hello: Any = False
        while hello is False:
            data = sock.recv(1 << 16)
            if not data:
                raise redis.ConnectionError("Redis closed the connection during HELLO")
            reader.feed(data)
            hello = reader.gets()
        if isinstance(hello, hiredis.ReplyError):
            connection.disconnect()
            raise redis.ConnectionError(f"HELLO 3 refused (Redis 6.2+ is needed): {hello}")
        with self._lock:
            self._connection, self._reader, self._broken = connection, reader, False
            self._replies.clear()
            waiting = [s for slots in self._slots.values() for s in slots if not s.done]
            commands: list[tuple[Any, ...]] = [("SUBSCRIBE", *self._slots)] if self._slots else []
            self._send_locked([*commands, *(("MGET", *s.keys) for s in waiting)], waiting)

    def _drop(self) -> None:
        with self._lock:
            connection, self._connection, self._broken = self._connection, None, True
            self._replies.clear()
        if connection is not None:
            connection.disconnect()

    def close(self) -> None:
        """Close the connection; waits still running return None."""
        self._closed = True
        self._drop()
        with self._lock:
            for slots in self._slots.values():
                for slot in slots:
                    slot.event.set()


def _finish(slot: Slot, payload: bytes | None) -> None:
    slot.payload = payload
    slot.done = True
    slot.event.set()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)
