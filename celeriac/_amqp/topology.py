"""What the AMQP broker declares: task queues (with their exchanges and bindings), the delay
queues behind countdown/eta, dead-letter queues and broadcast exchanges.

Rules:

* A task queue is durable. Queues named in ``task_queues`` are declared as written there
  (exchange, exchange type, routing key, ``queue_arguments``, ``max_priority``, kombu's
  ``message_ttl``/``expires``/``max_length``/``max_length_bytes``); Celery's
  ``kombu.Queue``/``kombu.Exchange`` objects and :mod:`celeriac.queues`' are read by their
  attributes, and dicts with the same keys work too. Any other queue is declared on first
  use, bound to the default exchange under its own name, with ``x-max-priority`` when
  ``max_priority`` is set (``task_queue_max_priority``) and ``x-queue-type`` from
  ``queue_type`` (``task_create_missing_queue_type``). As in Celery, no priority unless
  asked: a queue RabbitMQ already holds can only be declared again with the same arguments.
* Delays (docs/decisions/0020): one shared headers exchange ``celeriac.delay`` and at most
  :data:`MAX_DELAY_EXPONENT` + 1 durable queues ``celeriac.delay.<ms>`` whose ``x-message-ttl``
  is a power of two of milliseconds. A delayed message is published to the exchange with the
  target queue as routing key; when its TTL runs out RabbitMQ dead-letters it to the default
  exchange under that routing key, i.e. into the target queue. :func:`delay_bucket_ms` picks
  the bucket; the consumer sends a message that arrives early on to the next bucket.
* A rejected message is published to ``<queue>.dead-letter`` (durable) with the reason.
* Broadcast channel ``c`` is the fanout exchange ``celeriac.broadcast.<c>`` (not durable);
  each subscriber binds an exclusive, auto-deleted, server-named queue to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from celeriac.queues import rabbitmq_arguments

DELAY_EXCHANGE = "celeriac.delay"
DELAY_PREFIX = "celeriac.delay."
#: the header that routes a message to its delay queue (and is dropped on delivery)
DELAY_HEADER = "celeriac-delay-ms"
#: the longest bucket is 2**32 ms (about 50 days); longer delays take several hops
MAX_DELAY_EXPONENT = 32
#: a message may arrive this late rather than take one more hop (milliseconds, or 1/16 of
#: the delay when that is more): bounds the hops a delay takes to about a dozen
LATE_SLACK_MS = 20
DEAD_LETTER_SUFFIX = ".dead-letter"
BROADCAST_PREFIX = "celeriac.broadcast."


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """How one queue is declared and how a message for it is published."""

    name: str
    exchange: str = ""
    exchange_type: str = "direct"
    routing_key: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    durable: bool = True

    @property
    def max_priority(self) -> int:
        value = self.arguments.get("x-max-priority")
        return value if isinstance(value, int) else 0

    @property
    def publish_key(self) -> str:
        return self.routing_key or self.name


def default_spec(name: str, max_priority: int | None, queue_type: str | None) -> QueueSpec:
    """A queue nobody declared in ``task_queues`` (see the module docstring)."""
    arguments: dict[str, Any] = {}
    if queue_type and queue_type != "classic":
        arguments["x-queue-type"] = queue_type
    elif max_priority:
        arguments["x-max-priority"] = int(max_priority)
    return QueueSpec(name=name, routing_key=name, arguments=arguments)


def spec_of(declared: Any, max_priority: int | None = None) -> QueueSpec:
    """A :class:`QueueSpec` from a ``task_queues`` entry: a kombu-style Queue (attributes
    ``name``, ``exchange``, ``routing_key``, ``queue_arguments``, ``max_priority``,
    ``durable``), a dict with those keys, or a bare name."""
    if isinstance(declared, str):
        return default_spec(declared, max_priority, None)
    get = declared.get if isinstance(declared, Mapping) else (
        lambda key, default=None: getattr(declared, key, default)
    )
    name = str(get("name"))
    exchange: Any = get("exchange")
    exchange_type = get("exchange_type") or "direct"
    if exchange is not None and not isinstance(exchange, str):
        exchange_type = getattr(exchange, "type", None) or exchange_type
        exchange = getattr(exchange, "name", "")
    arguments = rabbitmq_arguments(declared)
    priority = get("max_priority") or max_priority
    if priority and arguments.get("x-queue-type", "classic") == "classic":
        arguments.setdefault("x-max-priority", int(priority))
    durable = get("durable")
    return QueueSpec(
        name=name,
        exchange=str(exchange or ""),
        exchange_type=str(exchange_type),
        routing_key=str(get("routing_key") or name),
        arguments=arguments,
        durable=True if durable is None else bool(durable),
    )


def specs_of(task_queues: Any, max_priority: int | None = None) -> dict[str, QueueSpec]:
    """Specs by queue name from a ``task_queues`` setting: a list of entries (see
    :func:`spec_of`) or Celery's older mapping ``{name: {"exchange": ..., ...}}``."""
    if not task_queues:
        return {}
    entries: Iterable[Any]
    if isinstance(task_queues, Mapping):
        entries = [{"name": name, **dict(opts or {})} for name, opts in task_queues.items()]
    else:
        entries = task_queues
    specs = [spec_of(entry, max_priority) for entry in entries]
    return {spec.name: spec for spec in specs}


def declare_queue(channel: Any, spec: QueueSpec) -> None:
    """Declare ``spec``'s exchange, queue and binding on ``channel`` (idempotent)."""
    if spec.exchange:
        channel.exchange_declare(spec.exchange, spec.exchange_type, durable=True,
                                 auto_delete=False)
    channel.queue_declare(spec.name, durable=spec.durable, auto_delete=False,
                          arguments=dict(spec.arguments) or None)
    if spec.exchange:
        channel.queue_bind(spec.name, spec.exchange, spec.routing_key)


def delay_bucket_ms(remaining_ms: float) -> int:
    """The TTL of the delay queue for a message due in ``remaining_ms``: the longest power of
    two not past the due time, or the next longer one when that is at most
    :data:`LATE_SLACK_MS` (or 1/16 of the delay) late. Never 0 for a positive delay."""
    remaining = max(1, int(remaining_ms + 0.999))
    exponent = min(remaining.bit_length() - 1, MAX_DELAY_EXPONENT)
    floor = 1 << exponent
    ceiling = floor << 1
    if floor == remaining or exponent == MAX_DELAY_EXPONENT:
        return floor
    if ceiling - remaining <= max(LATE_SLACK_MS, remaining >> 4):
        return ceiling
    return floor


def declare_delay_bucket(channel: Any, bucket_ms: int) -> str:
    """Declare the delay queue for ``bucket_ms`` and its binding to :data:`DELAY_EXCHANGE`;
    returns its name."""
    channel.exchange_declare(DELAY_EXCHANGE, "headers", durable=True, auto_delete=False)
    name = f"{DELAY_PREFIX}{bucket_ms}"
    channel.queue_declare(
        name,
        durable=True,
        auto_delete=False,
        arguments={"x-message-ttl": bucket_ms, "x-dead-letter-exchange": ""},
    )
    channel.queue_bind(name, DELAY_EXCHANGE, "",
                       arguments={"x-match": "all", DELAY_HEADER: str(bucket_ms)})
    return name


def dead_letter_queue(queue: str) -> str:
    return queue + DEAD_LETTER_SUFFIX


def broadcast_exchange(channel_name: str) -> str:
    return BROADCAST_PREFIX + channel_name
