"""Broadcast subscriptions over fanout exchanges (remote control, events).

Each subscription has its own connection and an exclusive, auto-deleted, server-named queue
bound to the channel's fanout exchange before :func:`AmqpSubscription` returns, so it receives
everything broadcast afterwards, in order, and nothing from before. Payloads are consumed
without acks (fire and forget, as a broadcast is). One reader; closing deletes the queue.
"""

from __future__ import annotations

from typing import Any

from celeriac._amqp.connection import (
    CLIENT_ERRORS,
    AmqpParams,
    close_quietly,
    open_channel,
    translate,
    wait_until,
)
from celeriac._utils.pid import PROCESS


def declare_broadcast(channel: Any, exchange: str) -> None:
    """The fanout exchange of a broadcast channel (transient, as what goes through it)."""
    channel.exchange_declare(exchange, "fanout", durable=False, auto_delete=False)


class FanoutReader:
    """A subscription's reading side (the broker makes it a ``Subscription``)."""

    def __init__(self, params: AmqpParams, exchange: str) -> None:
        self.params = params
        self._received: list[bytes] = []
        self._pid = PROCESS.pid
        self._conn, channel = open_channel(params)
        try:
            declare_broadcast(channel, exchange)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).queue
            channel.queue_bind(queue, exchange, "")
            channel.basic_consume(queue, callback=self._on_message, no_ack=True)
        except CLIENT_ERRORS as exc:
            close_quietly(self._conn)
            raise translate(exc, params) from exc

    def _on_message(self, message: Any) -> None:
        body = message.body
        self._received.append(body if isinstance(body, bytes) else bytes(body))

    def get(self, timeout_s: float) -> list[bytes]:
        conn = self._conn
        if conn is None or self._pid != PROCESS.pid:
            return []
        try:
            wait_until(conn, lambda: bool(self._received), timeout_s)
        except CLIENT_ERRORS as exc:
            self.close()
            raise translate(exc, self.params) from exc
        got, self._received = self._received, []
        return got

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == PROCESS.pid:
            close_quietly(conn)
