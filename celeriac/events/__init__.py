"""Events: what workers (and, with ``task_send_sent_event``, clients) report as tasks move.

Celery's event format and field names on the broker's broadcast primitive: every event goes
to the channel :data:`EVENTS_CHANNEL` in batches (a JSON list of event dicts per broadcast;
:mod:`celeriac.events.event` states the wire rules). ``app.events`` is an :class:`Events`:

- ``app.events.Receiver(app.connection(), handlers={...})``: :class:`EventReceiver`;
- ``app.events.State()``: :class:`State`, the cluster as the events describe it;
- ``app.events.Dispatcher(app.connection(), hostname=...)``: :class:`EventDispatcher`.

Workers send task events while events are on (``worker -E``, ``worker_send_task_events``,
or the ``enable_events`` control command): see :mod:`celeriac.middleware.events` and
:mod:`celeriac.worker.events`.
"""

from __future__ import annotations

import threading
from typing import Any

from celeriac import signals
from celeriac._utils.pid import PROCESS
from celeriac.events.connection import Connection, broker_of
from celeriac.events.dispatcher import EventDispatcher, anon_hostname
from celeriac.events.event import (
    EVENTS_CHANNEL,
    Event,
    LamportClock,
    decode_events,
    encode_events,
    group_from,
)
from celeriac.events.receiver import EventReceiver
from celeriac.events.state import State, Task, Worker

__all__ = [
    "EVENTS_CHANNEL",
    "Connection",
    "Event",
    "EventDispatcher",
    "EventReceiver",
    "Events",
    "LamportClock",
    "State",
    "Task",
    "Worker",
    "anon_hostname",
    "broker_of",
    "decode_events",
    "encode_events",
    "group_from",
]


class Events:
    """``app.events``: Celery's ``Receiver``, ``State`` and ``Dispatcher`` bound to the app.

    ``task_dispatcher`` is the dispatcher of the worker running in this process while it sends
    task events (None otherwise): the events middleware sends through it. Set it only with
    :meth:`attach_worker` / :meth:`detach_worker`, which also make the app rebuild its
    middleware stack (the middleware's worker hooks are in it only while this is set).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.task_dispatcher: EventDispatcher | None = None
        self._sent_dispatcher: EventDispatcher | None = None
        self._lock = threading.Lock()

    def Receiver(
        self, connection: Any = None, handlers: Any = None, **options: Any
    ) -> EventReceiver:
        return EventReceiver(connection, handlers, app=self.app, **options)

    def Dispatcher(
        self, connection: Any = None, hostname: str | None = None, enabled: bool = True,
        **options: Any,
    ) -> EventDispatcher:
        return EventDispatcher(connection, hostname, enabled, app=self.app, **options)

    def State(self, **options: Any) -> State:
        return State(**options)

    @property
    def sent_dispatcher(self) -> EventDispatcher:
        """The dispatcher ``task-sent`` events of this process go through (made on first use;
        remade after a fork)."""
        found = self._sent_dispatcher
        if found is None or found.pid != PROCESS.pid:
            with self._lock:
                found = self._sent_dispatcher = EventDispatcher(app=self.app)
        return found

    def attach_worker(self, dispatcher: EventDispatcher | None) -> None:
        """Send this process's task events through ``dispatcher`` (None: send none)."""
        self.task_dispatcher = dispatcher
        # The stack is rebuilt when this counter moves: the events middleware's worker hooks
        # join it (or leave it) at the worker's next batch.
        signals._changed()

    def detach_worker(self) -> None:
        self.attach_worker(None)

    def __repr__(self) -> str:
        return f"<Events of {self.app!r}>"
