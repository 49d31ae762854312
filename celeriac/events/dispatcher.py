"""``EventDispatcher``: buffers events and broadcasts them in batches.

Rules:

- :meth:`EventDispatcher.send` only appends to a buffer (no I/O), so a worker can send an event
  at every step of a task for the price of building a dict; :meth:`~EventDispatcher.flush`
  broadcasts the whole buffer as ONE payload on :data:`~celeriac.events.event.EVENTS_CHANNEL`.
  The buffer is also flushed, by the sender, when it reaches ``buffer_limit`` events.
  Whoever owns a dispatcher flushes it often: the worker flushes after an executor flush when
  :meth:`~EventDispatcher.due` says so, and at least every 0.5 s (:mod:`celeriac.worker.events`);
  ``send(..., flush=True)`` flushes at once (one-off senders such as ``task-sent``).
- Thread-safe: any thread may send and flush; a flush takes the buffer under the lock and
  broadcasts outside it.
- Events are fire-and-forget: a broadcast that fails drops its batch and logs one warning
  per outage (monitors miss those events; tasks and the worker go on).
- A disabled dispatcher sends nothing; ``groups`` limits what it sends (``{"worker"}``: only
  ``worker-*`` events).
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from celeriac.events.connection import broker_of
from celeriac.events.event import (
    EVENTS_CHANNEL,
    encode_events,
    group_from,
    utcoffset,
)

__all__ = ["EventDispatcher"]

logger = logging.getLogger("celeriac.events")


def anon_hostname() -> str:
    """The ``hostname`` field of events from a process that is not a worker (a client sending
    ``task-sent``): ``gen<pid>@<host>``, as Celery names it."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


class EventDispatcher:
    """Sends events (Celery's ``app.events.Dispatcher``).

    ``connection`` is ``app.connection()``, a broker, or None for ``app``'s broker.
    """

    #: events buffered before :meth:`send` flushes by itself
    DEFAULT_BUFFER_LIMIT = 2000
    #: :meth:`due` once this many events wait, or the oldest waited this long
    DUE_AT_COUNT = 500
    DUE_AFTER_S = 0.2

    def __init__(
        self,
        connection: Any = None,
        hostname: str | None = None,
        enabled: bool = True,
        *,
        app: Any = None,
        groups: Iterable[str] | None = None,
        channel: str = EVENTS_CHANNEL,
        buffer_limit: int = DEFAULT_BUFFER_LIMIT,
        **_celery_options: Any,
    ) -> None:
        self.broker = broker_of(connection, app)
        self.hostname = hostname or anon_hostname()
        self.enabled = enabled
        self.groups: set[str] | None = set(groups) if groups is not None else None
        self.channel = channel
        self.buffer_limit = max(1, int(buffer_limit))
        #: this sender's clock: each event gets the next value (``next`` on a count is atomic)
        self._clock = itertools.count(1)
        self.pid = os.getpid()
        self.utcoffset = utcoffset()
        self._buffer: list[dict[str, Any]] = []
        #: the fields every event of this sender carries
        self._same = {"hostname": self.hostname, "utcoffset": self.utcoffset, "pid": self.pid}
        #: monotonic time the oldest buffered event was sent
        self._oldest_s = 0.0
        self._lock = threading.Lock()
        self._failing = False
        #: events broadcast so far, and events dropped because a broadcast failed
        self.sent = 0
        self.dropped = 0

    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        """Stop sending; what is buffered is dropped."""
        self.enabled = False
        with self._lock:
            self._buffer = []

    def send(self, type: str, *, flush: bool = False, **fields: Any) -> None:
        """Buffer one event of ``type`` with ``fields`` (``timestamp`` defaults to now;
        ``hostname``, ``utcoffset``, ``pid``, ``clock`` are this dispatcher's). With ``flush``,
        broadcast the buffer at once."""
        if not self.enabled:
            return
        if self.groups is not None and group_from(type) not in self.groups:
            return
        fields["type"] = type
        fields.update(self._same)  # hostname, utcoffset, pid
        fields["clock"] = next(self._clock)
        if "timestamp" not in fields:
            fields["timestamp"] = time.time()
        with self._lock:
            buffer = self._buffer
            if not buffer:
                self._oldest_s = time.monotonic()
            buffer.append(fields)
            full = len(buffer) >= self.buffer_limit
        if flush or full:
            self.flush()

    def publish(self, type: str, fields: dict[str, Any], **_options: Any) -> None:
        """Celery's ``publish(type, fields, producer)``: send and flush one event."""
        self.send(type, flush=True, **fields)

    @property
    def pending(self) -> int:
        """Events buffered and not broadcast yet."""
        return len(self._buffer)

    def due(self) -> bool:
        """Whether a batch is worth a broadcast now: :attr:`DUE_AT_COUNT` events wait, or the
        oldest waited :attr:`DUE_AFTER_S` (the worker asks after each executor flush, so a
        stream of tasks costs one broadcast per batch, not one per flush)."""
        pending = len(self._buffer)
        if not pending:
            return False
        return (pending >= self.DUE_AT_COUNT
                or time.monotonic() - self._oldest_s >= self.DUE_AFTER_S)

    def flush(self) -> int:
        """Broadcast the buffered events as one payload; returns how many were sent (0 when
        none were buffered or the broadcast failed)."""
        with self._lock:
            batch = self._buffer
            if not batch:
                return 0
            self._buffer = []
        try:
            self.broker.broadcast(self.channel, encode_events(batch))
        except Exception as exc:
            self.dropped += len(batch)
            if not self._failing:
                logger.warning("events: could not send %d event(s): %s", len(batch), exc)
            self._failing = True
            return 0
        if self._failing:
            logger.warning("events: sending again")
            self._failing = False
        self.sent += len(batch)
        return len(batch)

    def close(self) -> None:
        """Flush what is buffered."""
        self.flush()

    def __enter__(self) -> EventDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<EventDispatcher {self.hostname} {state} on {self.broker!r}>"
