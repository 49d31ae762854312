"""The consuming side of the AMQP broker: one connection and channel per broker object and
process, used under a lock by whichever thread consumes, acks, requeues or rejects.

How a claim works (:meth:`Consumer.fetch`): set ``basic.qos`` (per consumer) to the number of
messages asked for, ``basic.consume`` each queue with manual acks, wait until the first message
arrives or the timeout passes, then ``basic.cancel``. RabbitMQ delivers nothing for a consumer
after its cancel-ok, so every message pushed to us is in hand when the call returns, and none
sits in a prefetch buffer where ``queue_size`` cannot see it and a requeue would bounce back.
``basic.qos`` and ``basic.consume`` go out without waiting for their answers and the cancels
are answered together, so a claim costs one round trip (not one per message). Messages beyond
the number asked for (several queues, each with its own window) are given back at once.

Delivered messages stay unacked on the channel until :meth:`ack`, :meth:`requeue`
(``basic.nack`` with requeue, so RabbitMQ flags them redelivered) or, for a reject, until the
dead-letter copy is confirmed and the original acked. A connection or channel that is lost
takes its unacked messages back to their queues (RabbitMQ redelivers them, flagged); the tags
carry the connection's generation, so an ack for a lost channel's message is dropped (the
message is delivered again: at-least-once) instead of acking a stranger's.

Acks and nacks are one frame each with ``multiple`` where the tags are contiguous; the frames of
one call are built here and written in one ``send`` (py-amqp's generic method writer added about
a fifth to the cost of the system call, for the one ack per task an early-ack worker sends).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from typing import Any

from celeriac._amqp.connection import (
    CLIENT_ERRORS,
    AmqpParams,
    close_quietly,
    open_channel,
    tick,
    translate,
    wait_until,
)
from celeriac._amqp.wire import message_priority
from celeriac._utils.pid import PROCESS
from celeriac.exceptions import BrokerConnectionError

#: a method frame with a 13-byte payload: type 1, channel, size, class, method, delivery tag,
#: bits (``multiple``; for basic.nack also ``requeue``), frame end (AMQP 0-9-1, 4.2.3)
_SETTLE_FRAME = struct.Struct(">BHIHHQBB")
_ACK_METHOD = 80  # basic.ack (class 60)
_NACK_METHOD = 120  # basic.nack (class 60): RabbitMQ's extension, unlike basic.reject it takes
# ``multiple``; py-amqp has no basic_nack
_QOS = (60, 10)  # basic.qos
_CANCEL = (60, 30)  # basic.cancel
_CANCEL_TIMEOUT_S = 30.0

#: (queue, amqp.Message, (generation, delivery tag))
Received = tuple[str, Any, tuple[int, int]]


class Consumer:
    def __init__(self, params: AmqpParams, declare: Any) -> None:
        self.params = params
        #: ``declare(channel, queue)``: declares ``queue`` on the channel (cached by the caller)
        self._declare = declare
        self.lock = threading.RLock()
        self._conn: Any = None
        self._channel: Any = None
        self._pid = 0
        self.generation = 0
        self._qos = 0
        self._declared: set[str] = set()
        self._inbox: list[tuple[str, Any]] = []
        #: delivery tags of the current channel not yet acked or given back
        self._unacked: set[int] = set()
        self._tag_seq = 0

    # -- connection ------------------------------------------------------------------------------
    def channel(self) -> Any:
        """The channel, (re)connected when needed (call under :attr:`lock`)."""
        if self._conn is not None and self._pid != PROCESS.pid:
            self._conn = self._channel = None  # the parent's: never touched in a child
        if self._channel is None:
            conn, channel = open_channel(self.params)
            self._conn, self._channel, self._pid = conn, channel, PROCESS.pid
            self.generation += 1
            self._unacked = set()
            self._qos = 0
            self._declared = set()
        return self._channel

    def ensure_declared(self, queues: Sequence[str]) -> None:
        channel = self.channel()
        for queue in queues:
            if queue not in self._declared:
                self._declare(channel, queue)
                self._declared.add(queue)

    def drop(self) -> None:
        """Forget the connection (its unacked messages go back to their queues)."""
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and self._pid == PROCESS.pid:
            close_quietly(conn)

    def failed(self, exc: BaseException) -> Exception:
        """Drop the connection and translate ``exc`` (call in an ``except CLIENT_ERRORS``)."""
        self.drop()
        return translate(exc, self.params)

    # -- claiming --------------------------------------------------------------------------------
    def fetch(self, queues: Sequence[str], max_messages: int, timeout_s: float) -> list[Received]:
        """Up to ``max_messages`` messages from ``queues`` (see the module docstring)."""
        with self.lock:
            try:
                return self._fetch(queues, max_messages, timeout_s)
            except CLIENT_ERRORS as exc:
                raise self.failed(exc) from exc

    def _fetch(self, queues: Sequence[str], max_messages: int, timeout_s: float) -> list[Received]:
        self.ensure_declared(queues)
        channel, conn = self._channel, self._conn
        # One round trip per claim: qos and consume go out without waiting for their -ok
        # (the channel applies them in order; an error closes it, and the read below sees
        # that), then the cancels, and everything delivered before their cancel-ok is ours.
        if self._qos != max_messages:
            channel.send_method(_QOS, "lBb", (0, max_messages, False))
            self._qos = max_messages
        inbox = self._inbox = []
        tags = []
        for queue in queues:
            def on_message(message: Any, queue: str = queue) -> None:
                inbox.append((queue, message))

            self._tag_seq += 1
            tag = f"celeriac-{self._tag_seq}"
            channel.basic_consume(queue, consumer_tag=tag, callback=on_message, no_ack=False,
                                  nowait=True)
            tags.append(tag)
        wait_until(conn, lambda: bool(inbox), timeout_s)
        for tag in tags:
            channel.send_method(_CANCEL, "sb", (tag, False))  # each answered by a cancel-ok
        callbacks = channel.callbacks  # py-amqp drops a tag's callback at its cancel-ok
        wait_until(conn, lambda: not any(tag in callbacks for tag in tags), _CANCEL_TIMEOUT_S)
        if any(tag in callbacks for tag in tags):
            raise BrokerConnectionError(
                f"RabbitMQ at {self.params.display} did not answer a basic.cancel within "
                f"{_CANCEL_TIMEOUT_S:g} s"
            )
        self._inbox = []
        generation = self.generation
        got = [
            (queue, message, (generation, message.delivery_info["delivery_tag"]))
            for queue, message in inbox
        ]
        self._unacked.update(tag for _, _, (_, tag) in got)
        if len(queues) > 1:
            got.sort(key=lambda item: -message_priority(item[1]))  # stable: FIFO within a priority
        if len(got) > max_messages:
            # Several queues each filled a window: give back the lowest priorities now
            # (they are redelivered, flagged, to the next claim).
            self.requeue([tag for _, _, tag in got[max_messages:]])
            got = got[:max_messages]
        return got

    def keep_alive(self) -> None:
        """Read what arrived and send a heartbeat when one is due, unless a claim is reading
        the connection right now (it does both itself). Called from another thread while the
        worker is too busy to claim: RabbitMQ closes a connection that misses heartbeats, and
        would then redeliver every message this worker holds."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            conn = self._conn
            if conn is None or self._pid != PROCESS.pid:
                return
            tick(conn)
        except CLIENT_ERRORS as exc:
            raise self.failed(exc) from exc
        finally:
            self.lock.release()

    # -- settling --------------------------------------------------------------------------------
    def ack(self, tags: Sequence[tuple[int, int]]) -> None:
        self._settle(tags, requeue=None)

    def requeue(self, tags: Sequence[tuple[int, int]]) -> None:
        self._settle(tags, requeue=True)

    def _settle(self, tags: Sequence[tuple[int, int]], requeue: bool | None) -> None:
        with self.lock:
            current = [tag for generation, tag in tags if generation == self.generation]
            if not current or self._channel is None or self._pid != PROCESS.pid:
                return  # the channel that delivered them is gone: RabbitMQ took them back
            method, bits = (_ACK_METHOD, 0) if requeue is None else (_NACK_METHOD, 2)
            channel_id = self._channel.channel_id
            data = b"".join(
                _SETTLE_FRAME.pack(1, channel_id, 13, 60, method, last, bits | multiple, 206)
                for last, multiple in _runs(current, self._unacked)
            )
            try:
                if data:
                    _write(self._conn, data)
            except CLIENT_ERRORS as exc:
                raise self.failed(exc) from exc
            self._unacked.difference_update(current)

    def close(self) -> None:
        with self.lock:
            self.drop()


def _write(conn: Any, data: bytes) -> None:
    """Write ready-made frames on ``conn`` (under the consumer's lock, its only writer)."""
    import amqp

    transport = conn.transport
    if transport is None:
        raise amqp.exceptions.RecoverableConnectionError("connection already closed")
    transport.write(data)
    conn.bytes_sent += 1  # what py-amqp's heartbeat_tick counts as traffic


def _runs(tags: Sequence[int], unacked: set[int]) -> list[tuple[int, bool]]:
    """``(tag, multiple)`` frames settling exactly ``tags`` out of the channel's ``unacked``:
    the longest run of the lowest unacked tags that are all in ``tags`` becomes one
    ``multiple`` frame (``multiple`` settles every unacked tag up to it), the rest one frame
    each. Workers settle in delivery order, so a batch is usually one frame."""
    if len(tags) == 1:
        return [(tags[0], False)] if tags[0] in unacked else []
    wanted = set(tags) & unacked
    ordered = sorted(unacked)
    prefix = 0
    while prefix < len(ordered) and ordered[prefix] in wanted:
        prefix += 1
    frames: list[tuple[int, bool]] = []
    if prefix > 1:
        frames.append((ordered[prefix - 1], True))
        wanted.difference_update(ordered[:prefix])
    frames.extend((tag, False) for tag in sorted(wanted))
    return frames
