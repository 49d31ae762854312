"""``Queue`` and ``Exchange`` as Celery users declare them in ``task_queues``, without kombu.

Celery's documentation declares queues with ``from kombu import Queue, Exchange``. celeriac
reads kombu's objects as they are (by their attributes), so that import keeps working while
kombu is installed; these two classes take the same names and keywords for a project that
drops kombu with Celery (``from celeriac import Queue, Exchange``).

Rules:

* Only what declares a queue is kept: names, the exchange's type, the routing key,
  durability and RabbitMQ's queue arguments. Arguments kombu spells as keywords become
  RabbitMQ's ``x-`` arguments as kombu makes them: ``message_ttl`` and ``expires`` in seconds
  (sent as milliseconds), ``max_length``, ``max_length_bytes``; an argument also given in
  ``queue_arguments`` takes the keyword's value. ``max_priority`` becomes ``x-max-priority``
  on classic queues only (quorum queues refuse it), which the AMQP broker decides.
* An ``exchange`` given by name is a direct exchange of that name; no exchange means
  RabbitMQ's default exchange, which routes by queue name (as Celery's default queue).
* The routing key defaults to the queue's name.
* Nothing here talks to a broker: brokers that have no exchanges (Redis, SQLite,
  PostgreSQL) use the queue's name only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["X_ARGUMENTS", "Exchange", "Queue", "rabbitmq_arguments"]

#: kombu's keyword -> (RabbitMQ argument, factor to its unit)
X_ARGUMENTS: dict[str, tuple[str, float]] = {
    "message_ttl": ("x-message-ttl", 1000.0),
    "expires": ("x-expires", 1000.0),
    "max_length": ("x-max-length", 1.0),
    "max_length_bytes": ("x-max-length-bytes", 1.0),
}


class Exchange:
    """An exchange: ``Exchange("media", type="topic")``; ``type`` defaults to direct."""

    def __init__(self, name: str = "", type: str = "direct", *, durable: bool = True,
                 auto_delete: bool = False,
                 arguments: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.type = type or "direct"
        self.durable = durable
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})

    def __repr__(self) -> str:
        return f"<Exchange {self.name}({self.type})>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Exchange):
            return NotImplemented
        return (self.name, self.type, self.durable, self.auto_delete, self.arguments) == (
            other.name, other.type, other.durable, other.auto_delete, other.arguments)

    def __hash__(self) -> int:
        return hash((self.name, self.type))


class Queue:
    """A queue: ``Queue("videos", Exchange("media", type="topic"), routing_key="media.video")``."""

    def __init__(
        self,
        name: str = "",
        exchange: Exchange | str | None = None,
        routing_key: str = "",
        *,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        queue_arguments: Mapping[str, Any] | None = None,
        message_ttl: float | None = None,
        expires: float | None = None,
        max_length: int | None = None,
        max_length_bytes: int | None = None,
        max_priority: int | None = None,
    ) -> None:
        self.name = name
        self.exchange: Exchange | None = (
            Exchange(exchange) if isinstance(exchange, str) else exchange)
        self.routing_key = routing_key or name
        self.durable = durable
        self.exclusive = exclusive
        self.auto_delete = auto_delete
        self.message_ttl = message_ttl
        self.expires = expires
        self.max_length = max_length
        self.max_length_bytes = max_length_bytes
        self.max_priority = max_priority
        self.queue_arguments = dict(queue_arguments or {})

    def __repr__(self) -> str:
        return f"<Queue {self.name} -> {self.exchange!r} -> {self.routing_key}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Queue):
            return NotImplemented
        return (self.name, self.exchange, self.routing_key, self.durable,
                rabbitmq_arguments(self)) == (other.name, other.exchange, other.routing_key,
                                              other.durable, rabbitmq_arguments(other))

    def __hash__(self) -> int:
        return hash((self.name, self.routing_key))


def rabbitmq_arguments(queue: Any) -> dict[str, Any]:
    """The ``queue.declare`` arguments of a queue declared as Celery users do: a
    :class:`Queue`, kombu's ``Queue`` (both read by attribute) or a dict with the same keys;
    ``queue_arguments`` plus the keywords of :data:`X_ARGUMENTS` (which win)."""
    if isinstance(queue, Mapping):
        get = queue.get
    else:
        def get(key: str, default: Any = None) -> Any:
            return getattr(queue, key, default)
    arguments = dict(get("queue_arguments") or {})
    for keyword, (argument, factor) in X_ARGUMENTS.items():
        value = get(keyword)
        if value is not None:
            arguments[argument] = int(value * factor)
    return arguments
