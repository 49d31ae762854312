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

Consumers are named ``node|machine|pid|token`` (:func:`consumer_name`): the worker node
(``-n``) the broker was bound to, the machine's host name, the consuming process and a token
per broker object. A restarted worker with the same node name uses it to take back at once
what a dead earlier incarnation held (:meth:`Broker.reclaim_node`); see
docs/decisions/0008-publish-retry-and-node-reclaim.md.
"""

from __future__ import annotations

import abc
import os
import socket
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.backends.base import ResultBackend
from celeriac.message import Delivery, Envelope

#: stores ``(task_id, state, payload)`` records (with a lifetime) and acks deliveries, together
Settler = Callable[[Sequence[tuple[str, str, bytes]], float | None, Sequence[Delivery]], None]

#: seconds a claimed message stays with its consumer without renewal (``worker_lease_seconds``)
DEFAULT_LEASE_S = 10.0
_SEP = "|"
_MACHINE = socket.gethostname()
# Tokens of the broker objects alive in this process: an earlier incarnation that ran in this
# very process (same pid, e.g. pid 1 of a restarted container) is dead when its token is not.
_live_tokens: set[str] = set()


@dataclass(frozen=True, slots=True)
class Holder:
    """The parts of a consumer name (see :func:`consumer_name`)."""

    node: str
    machine: str
    pid: int
    token: str

    @classmethod
    def parse(cls, name: str) -> Holder | None:
        """The holder a consumer name stands for; None for names of another format (from an
        older release), which are left to lease expiry. Split from the right, so a node name
        may contain the separator."""
        parts = name.rsplit(_SEP, 3)
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3])

    def is_dead(self, node_announced: Callable[[], bool]) -> bool:
        """Whether this holder can no longer renew, ack or requeue anything.

        Rules: on this machine, when its process is gone (or, in this process, when its broker
        object is); on another machine, when ``node_announced()`` says no live presence record
        of its node exists. Anything unsure counts as alive: its messages then come back when
        their lease runs out, never from under a live consumer.
        """
        if self.machine != _MACHINE:
            return not node_announced()
        if self.pid == os.getpid():
            return self.token not in _live_tokens
        return _process_gone(self.pid)


def consumer_name(node: str, token: str) -> str:
    """``node|machine|pid|token``: who holds the messages a consumer claims."""
    return f"{node}{_SEP}{_MACHINE}{_SEP}{os.getpid()}{_SEP}{token}"


def node_prefix(node: str) -> str:
    """What every consumer name of worker node ``node`` starts with."""
    return node + _SEP


def dead_holders(
    names: Iterable[str], node: str, node_announced: Callable[[], bool]
) -> list[str]:
    """The consumer names among ``names`` that belong to worker node ``node`` and whose holder
    is dead (:meth:`Holder.is_dead`); ``node_announced`` is asked at most once."""
    answer: list[bool] = []

    def announced() -> bool:
        if not answer:
            answer.append(node_announced())
        return answer[0]

    dead = []
    for name in names:
        holder = Holder.parse(name)
        if holder is not None and holder.node == node and holder.is_dead(announced):
            dead.append(name)
    return dead


def _process_gone(pid: int) -> bool:
    """Whether process ``pid`` of this machine no longer runs: it does not exist, or it is a
    zombie. False when unsure (another user's process, no /proc, Windows)."""
    if os.name == "nt":
        return False  # os.kill(pid, 0) would terminate it there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by another user
    # A killed process its parent has not reaped yet keeps its pid but runs nothing.
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


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
        self.lease_s = float(self.transport_options.get("visibility_timeout", DEFAULT_LEASE_S))
        #: the worker node this broker consumes for ("" until :meth:`bind_node`)
        self.node = ""
        #: tells this broker object's consumers from others of the same process and node
        self.token = uuid.uuid4().hex[:12]
        _live_tokens.add(self.token)
        weakref.finalize(self, _live_tokens.discard, self.token)

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

    # -- crash recovery --------------------------------------------------------------------------
    def consumer_name(self) -> str:
        """The name this process's consumers of this broker hold messages under."""
        return consumer_name(self.node, self.token)

    def bind_node(self, hostname: str) -> None:
        """Name this broker's consumers after worker node ``hostname`` (``-n``), so a later
        incarnation of the node can tell its messages. Call it once, before consuming:
        messages claimed under an earlier name come back only when their lease runs out."""
        self.node = hostname

    def reclaim_node(self, hostname: str, queues: Sequence[str]) -> int:
        """Requeue now the messages held by dead earlier incarnations of worker node
        ``hostname`` (:meth:`Holder.is_dead`; live holders, such as a duplicate worker with
        the same name, keep theirs); returns how many. ``queues`` are where to look for
        brokers that cannot find a node's messages otherwise (Redis); others look everywhere.
        Call it at worker start, after :meth:`bind_node` and before the worker first
        announces itself (a live presence record of the node counts as the node alive). The
        messages' delivery counts are kept, so they arrive flagged as redelivered.

        The default reclaims nothing (memory://: its messages live and die with the
        worker's own process)."""
        return 0

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The broker may be used again afterwards (it reconnects)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
