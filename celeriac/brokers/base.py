"""The broker contract: what every transport (memory, SQLite, Redis, AMQP, PostgreSQL) provides.

A broker moves :class:`~celeriac.message.Envelope` objects between named queues. It never sees a
Task. Delivery is at-least-once: a consumed message stays owned by its consumer until it is
acked, requeued or rejected; if the consumer stops renewing its lease (it crashed), the broker
makes the message deliverable again.

Ordering rules every broker follows:

* higher ``priority`` (0..9, from the envelope's ``priority`` property) is delivered first;
* a message whose ``eta`` header lies in the future is not delivered before it;
* revoked task ids are stored by the broker so every worker, and a restarted one, honours them.

Client-library errors are translated into :class:`~celeriac.exceptions.TransportError` here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.backends.base import ResultBackend
from celeriac.message import Delivery, Envelope

#: stores ``(task_id, state, payload)`` records (with a lifetime) and acks deliveries, together
Settler = Callable[[Sequence[tuple[str, str, bytes]], float | None, Sequence[Delivery]], None]


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """What a worker announces about itself (read by ``inspect`` and the dashboard)."""

    hostname: str
    info: Mapping[str, Any]
    last_seen_s: float


class Broker(abc.ABC):
    """Base class of every broker. Subclasses set ``scheme`` and implement the abstract methods."""

    #: URL schemes this broker serves, e.g. ("sqlite",).
    schemes: tuple[str, ...] = ()
    #: Whether several processes can share this broker (False for memory://).
    shared_across_processes: bool = True

    def __init__(self, url: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.transport_options: dict[str, Any] = dict(transport_options or {})
        #: seconds a claimed message stays owned without renewal; the worker renews every third
        self.lease_s = float(self.transport_options.get("visibility_timeout", 30.0))

    # -- producing -----------------------------------------------------------------------------
    @abc.abstractmethod
    def publish(self, queue: str, envelope: Envelope) -> None:
        """Store ``envelope`` on ``queue``; returns once the broker has it durably (or as
        durably as the transport allows)."""

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        """Store many envelopes, in as few round trips as the transport allows."""
        for queue, envelope in items:
            self.publish(queue, envelope)

    def publish_once(self, queue: str, envelope: Envelope, key: str, ttl_s: float) -> bool:
        """Publish ``envelope`` unless ``key`` was already used within ``ttl_s`` seconds, as
        one atomic step across processes; True when published. Beat uses it with a
        deterministic key (entry name + scheduled time) so several schedulers never
        double-fire."""
        raise NotImplementedError(f"{type(self).__name__} does not support publish_once")

    # -- consuming -----------------------------------------------------------------------------
    @abc.abstractmethod
    def consume(self, queues: Sequence[str], max_messages: int, timeout_s: float) -> list[Delivery]:
        """Claim up to ``max_messages`` deliverable messages from ``queues``, waiting at most
        ``timeout_s`` for the first one. Returns an empty list on timeout."""

    @abc.abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove finished messages for good."""

    @abc.abstractmethod
    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        """Give messages back so any consumer can take them again now."""

    @abc.abstractmethod
    def reject(self, deliveries: Sequence[Delivery], reason: str) -> None:
        """Remove messages that can never be processed, keeping a record with ``reason``
        (the rejected-message record, see :meth:`rejected`)."""

    def renew(self, deliveries: Sequence[Delivery]) -> None:  # noqa: B027 - optional hook
        """Extend the lease of messages this consumer still holds (called periodically)."""

    def settle_with(self, backend: ResultBackend) -> Settler | None:
        """A function that stores results in ``backend`` and acks deliveries in ONE round trip
        (one transaction or pipeline) when both live on the same server; None otherwise. The
        worker then settles each batch with it (results always become visible no later than
        the acks)."""
        return None

    # -- queues --------------------------------------------------------------------------------
    @abc.abstractmethod
    def purge(self, queues: Sequence[str]) -> int:
        """Delete every waiting (unclaimed) message on ``queues``; returns how many."""

    @abc.abstractmethod
    def queue_size(self, queue: str) -> int:
        """Messages waiting on ``queue`` (ready or scheduled, not claimed)."""

    def rejected(self, limit: int = 100) -> list[tuple[Envelope, str]]:
        """The most recent rejected messages with their reasons."""
        return []

    # -- revokes -------------------------------------------------------------------------------
    @abc.abstractmethod
    def revoke(self, task_ids: Sequence[str], expires_s: float) -> None:
        """Remember ``task_ids`` as revoked for ``expires_s`` seconds."""

    @abc.abstractmethod
    def revoked(self, task_ids: Sequence[str]) -> set[str]:
        """Which of ``task_ids`` are revoked."""

    # -- worker presence (inspect) -------------------------------------------------------------
    @abc.abstractmethod
    def announce(self, hostname: str, info: Mapping[str, Any], ttl_s: float) -> None:
        """Record that worker ``hostname`` is alive, with a JSON-able ``info`` mapping."""

    @abc.abstractmethod
    def workers(self) -> list[WorkerRecord]:
        """Workers announced within their ttl."""

    def withdraw(self, hostname: str) -> None:  # noqa: B027 - optional hook
        """Forget worker ``hostname`` (clean shutdown)."""

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The broker may be used again afterwards (it reconnects)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
