"""The publishing side of the AMQP broker: one connection and one confirm-mode channel per
process, shared by its threads under a lock (py-amqp connections are not thread-safe).

Rules:

* :meth:`Publisher.send` returns only when RabbitMQ confirmed every message of the batch
  (publisher confirms). It writes the whole batch first and then waits for the confirms, so
  a bulk send costs one round trip, not one per message. The batch's frames are written in
  sends of up to 64 KiB (not one per message); before each send what already arrived is read
  (confirms, ``connection.blocked``), as py-amqp's ``basic_publish`` did before every message.
  A nack or a message returned as unroutable (``mandatory``) raises TransportError; no
  confirm within ``confirm_timeout`` drops the connection and raises BrokerConnectionError,
  which the app's publish-retry policy retries (at-least-once: the first copy may have
  arrived).
* Each queue, exchange or delay queue is declared once per connection (a declaration is a
  round trip), before the first message that needs it.
* After ``fork()`` the child never touches the parent's connection: it opens its own.
* Any client-library error drops the connection (the next call reconnects) and comes out as
  :class:`~celeriac.exceptions.TransportError` (``connection.translate``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from celeriac._amqp.connection import (
    CLIENT_ERRORS,
    AmqpParams,
    close_quietly,
    open_channel,
    tick,
    translate,
)
from celeriac._utils.pid import PROCESS
from celeriac.exceptions import BrokerConnectionError, TransportError

DEFAULT_CONFIRM_TIMEOUT_S = 30.0
#: frames gathered before a send: below glibc's mmap threshold, and a few hundred small tasks
WRITE_BYTES = 64 * 1024
_PUBLISH = (60, 40)  # basic.publish

#: (exchange, routing key, amqp.Message, mandatory)
Outgoing = tuple[str, str, Any, bool]
#: something to declare once per connection: (key, function of the channel)
Declaration = tuple[Hashable, Callable[[Any], None]]


class Publisher:
    def __init__(self, params: AmqpParams, confirm_timeout_s: float | None = None) -> None:
        self.params = params
        self.confirm_timeout_s = float(
            confirm_timeout_s or params.options.get("confirm_timeout")
            or DEFAULT_CONFIRM_TIMEOUT_S
        )
        self._lock = threading.Lock()
        self._conn: Any = None
        self._channel: Any = None
        self._pid = 0
        self._declared: set[Hashable] = set()
        self._next_tag = 1
        self._outstanding: set[int] = set()
        self._nacked = 0
        self._returned: list[str] = []
        self._frames = _Frames()
        self._write_frames: Any = None

    # -- connection ------------------------------------------------------------------------------
    def _open(self) -> Any:
        if self._conn is not None and self._pid != PROCESS.pid:
            self._conn = self._channel = None  # the parent's: never touched in a child
        if self._channel is None:
            conn, channel = open_channel(self.params, confirms=True)
            # py-amqp's frame writer, writing into a list: the batch goes out in large sends
            self._frames = _Frames()
            self._write_frames = conn.frame_writer_cls(conn, self._frames)
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            self._conn, self._channel, self._pid = conn, channel, PROCESS.pid
            self._declared = set()
            self._next_tag = 1
        return self._channel

    def _drop(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        self._outstanding.clear()
        if conn is not None and self._pid == PROCESS.pid:
            close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def keep_alive(self) -> None:
        """Heartbeats for an idle publisher (skipped while another thread publishes); a
        connection that died is dropped quietly: the next publish opens a new one."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._conn is not None and self._pid == PROCESS.pid:
                tick(self._conn)
        except CLIENT_ERRORS:
            self._drop()
        finally:
            self._lock.release()

    # -- confirms --------------------------------------------------------------------------------
    def _settle(self, tag: int, multiple: bool) -> int:
        if multiple:
            before = len(self._outstanding)
            self._outstanding = {t for t in self._outstanding if t > tag}
            return before - len(self._outstanding)
        if tag in self._outstanding:
            self._outstanding.discard(tag)
            return 1
        return 0

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._nacked += self._settle(tag, multiple)

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        self._returned.append(f"exchange {exchange!r} routing key {routing_key!r}")

    # -- sending ---------------------------------------------------------------------------------
    def send(self, batch: Sequence[Outgoing], declarations: Sequence[Declaration] = ()) -> None:
        """Declare what is not yet declared, publish ``batch`` in order, wait for every
        confirm (see the module docstring)."""
        if not batch:
            return
        with self._lock:
            try:
                channel = self._open()
                for key, declare in declarations:
                    if key not in self._declared:
                        declare(channel)
                        self._declared.add(key)
                self._nacked = 0
                self._returned = []
                first = self._next_tag
                self._next_tag = first + len(batch)
                # Outstanding before the first write: what arrived (confirms included) is read
                # before each send, to see connection.blocked in time.
                self._outstanding.update(range(first, self._next_tag))
                self._publish(channel.channel_id, batch)
                self._wait_confirms()
            except CLIENT_ERRORS as exc:
                self._drop()
                raise translate(exc, self.params) from exc
            if self._nacked or self._returned:
                nacked, returned = self._nacked, self._returned
                self._declared.clear()  # a queue may have been deleted: declare again
                raise TransportError(
                    f"RabbitMQ at {self.params.display} did not take {nacked + len(returned)} "
                    f"of {len(batch)} message(s)"
                    + (f": unroutable ({'; '.join(sorted(set(returned)))})" if returned else "")
                )

    def _publish(self, channel_id: int, batch: Sequence[Outgoing]) -> None:
        from amqp.serialization import dumps

        frames, write_frames = self._frames, self._write_frames
        frames.clear()
        for exchange, routing_key, message, mandatory in batch:
            args = dumps("Bssbb", (0, exchange, routing_key, mandatory, False))
            write_frames(1, channel_id, _PUBLISH, args, message)
            if frames.size >= WRITE_BYTES:
                self._send_frames()
        self._send_frames()

    def _send_frames(self) -> None:
        """Read what arrived (without waiting), then send the gathered frames in one write."""
        conn = self._conn
        try:
            for _ in range(1000):
                conn.drain_events(timeout=0)
        except TimeoutError:
            pass
        data = self._frames.take()
        if data:
            conn.transport.write(data)

    def _wait_confirms(self) -> None:
        deadline = time.monotonic() + self.confirm_timeout_s
        conn = self._conn
        while self._outstanding:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                missing = len(self._outstanding)
                self._drop()
                raise BrokerConnectionError(
                    f"RabbitMQ at {self.params.display} confirmed no {missing} message(s) "
                    f"within {self.confirm_timeout_s:g} s (they may arrive: at-least-once)"
                )
            try:
                conn.drain_events(timeout=remaining_s)
            except TimeoutError:
                continue


class _Frames:
    """Where py-amqp's frame writer writes (its ``transport``): frames gathered for one send."""

    __slots__ = ("_parts", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: Any) -> None:
        chunk = bytes(data)  # the writer hands over a view of a buffer it reuses
        self._parts.append(chunk)
        self.size += len(chunk)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self.clear()
        return data

    def clear(self) -> None:
        self._parts = []
        self.size = 0
