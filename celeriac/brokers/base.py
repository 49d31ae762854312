"""The transport contract: what every broker (memory, SQLite, Redis, AMQP, PostgreSQL) provides.

A broker moves :class:`~celeriac.message.Envelope` objects between named queues, and bytes
between broadcast subscribers. It never sees a Task, and it stores nothing but messages:
revokes, worker presence, dedup keys and the rejected-message log live in the coordination
store (:mod:`celeriac.coordination`; docs/decisions/0012). Delivery is at-least-once: a consumed
message stays owned by its consumer until it is acked, requeued or rejected; if the consumer
stops renewing its lease (it crashed), the broker makes the message deliverable again (or the
transport redelivers natively, e.g. AMQP on a closed channel).

Ordering rules every broker follows:

* higher ``priority`` (0..9, from the envelope's ``priority`` property) is delivered first
  (when :attr:`Capabilities.priorities`; otherwise FIFO);
* a message whose ``eta`` header lies in the future is not delivered before it.

What a broker can do beyond the required operations is declared in its :class:`Capabilities`.

Client-library errors are translated into :class:`~celeriac.exceptions.TransportError` here.

Consumers are named ``node|machine|pid|token`` (:func:`consumer_name`): the worker node
(``-n``) the broker was bound to, the machine's host name, the consuming process and a token
per broker object. A restarted worker with the same node name uses it to take back at once
what a dead earlier incarnation held (:meth:`Broker.reclaim_node`); see
docs/decisions/0008-publish-retry-and-node-reclaim.md.
"""

from __future__ import annotations

import abc
import logging
import os
import socket
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac._utils.pid import PROCESS
from celeriac._utils.stored import StoredParts
from celeriac.message import Delivery, Envelope

#: stores ``(task_id, state, payload)`` records (with a lifetime) and acks deliveries, together
Settler = Callable[[Sequence[tuple[str, str, bytes]], float | None, Sequence[Delivery]], None]
#: where :meth:`Broker.reject` logs ``(queue, envelope, reason)`` of what it dead-letters: the
#: app sets it to its coordination store's ``record_rejected``
RejectedSink = Callable[[Sequence[tuple[str, Envelope, str]]], None]

logger = logging.getLogger("celeriac.brokers")

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
        if self.pid == PROCESS.pid:
            return self.token not in _live_tokens
        return _process_gone(self.pid)


def consumer_name(node: str, token: str) -> str:
    """``node|machine|pid|token``: who holds the messages a consumer claims."""
    return f"{node}{_SEP}{_MACHINE}{_SEP}{PROCESS.pid}{_SEP}{token}"


def node_prefix(node: str) -> str:
    """What every consumer name of worker node ``node`` starts with."""
    return node + _SEP


def dead_holders(
    names: Iterable[str], node: str, node_announced: Callable[[], bool] | None
) -> list[str]:
    """The consumer names among ``names`` that belong to worker node ``node`` and whose holder
    is dead (:meth:`Holder.is_dead`); ``node_announced`` is asked at most once (None: the node
    counts as announced, so holders on other machines count as alive)."""
    answer: list[bool] = []

    def announced() -> bool:
        if not answer:
            answer.append(True if node_announced is None else node_announced())
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
class Capabilities:
    """What a transport can do beyond the required operations (a class attribute of each
    broker; the contract tests check each flag against behaviour)."""

    #: holds a message with a future ``eta`` itself (else the worker would have to hold it)
    native_delays: bool = False
    #: claims are leases: unrenewed ones lapse and the message is delivered again;
    #: :meth:`Broker.renew` extends them and :meth:`Broker.reclaim_node` can release them
    leases: bool = False
    #: delivers higher ``priority`` first
    priorities: bool = False
    #: :meth:`Broker.broadcast` and :meth:`Broker.subscribe` work
    broadcast: bool = False
    #: :meth:`Broker.publish_once` takes the dedup key and publishes in one atomic step
    atomic_publish_once: bool = False
    #: :meth:`Broker.publish_stored` takes messages already in their stored layout
    stored_publish: bool = False


class Subscription(abc.ABC):
    """One subscriber of a broadcast channel (:meth:`Broker.subscribe`). It receives every
    payload broadcast after :meth:`Broker.subscribe` returned, in order, and none from
    before. Not thread-safe: one reader."""

    @abc.abstractmethod
    def get(self, timeout_s: float) -> list[bytes]:
        """The payloads received since the last call, waiting at most ``timeout_s`` for the
        first; an empty list on timeout."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop receiving (idempotent)."""

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Broker(abc.ABC):
    """Base class of every broker. Subclasses set ``schemes`` and ``capabilities`` and
    implement the abstract methods."""

    #: URL schemes this broker serves, e.g. ("sqlite",).
    schemes: tuple[str, ...] = ()
    #: Whether several processes can share this broker (False for memory://).
    shared_across_processes: bool = True
    #: What this transport can do beyond the required operations.
    capabilities: Capabilities = Capabilities()
    #: Celery settings this transport reads: the app hands each one the user set over in the
    #: transport options, under its own name (e.g. ``task_queues`` for AMQP's exchanges).
    app_settings: tuple[str, ...] = ()

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
        self._consumer_key: tuple[str, int] | None = None
        self._consumer_name = ""
        #: where :meth:`reject` logs what it dead-letters (None: logged as a warning only)
        self.rejected_sink: RejectedSink | None = None

    # -- producing -----------------------------------------------------------------------------
    @abc.abstractmethod
    def publish(self, queue: str, envelope: Envelope) -> None:
        """Store ``envelope`` on ``queue``; returns once the broker has it durably (or as
        durably as the transport allows)."""

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        """Store many envelopes, in as few round trips as the transport allows."""
        for queue, envelope in items:
            self.publish(queue, envelope)

    def publish_stored(
        self, queue: str, priority: int, task_ids: Sequence[str], entries: Sequence[StoredParts],
        *, wait: bool = True,
    ) -> None:
        """Store messages already encoded as the parts a store keeps (headers JSON, properties
        JSON, body, content type, content encoding: ``protocol.StoredTemplate``), each due now,
        all with ``priority``; ``task_ids[i]`` is the id inside ``entries[i]``. Bulk sends use it
        to skip a headers dict per message. With ``wait=False`` it may return before the broker
        has them (so the caller encodes its next batch meanwhile): :meth:`confirm_published`
        then returns once the broker has every one. Only brokers declaring
        :attr:`Capabilities.stored_publish` implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not support publish_stored")

    def confirm_published(self) -> None:
        """Return once every message this thread sent with ``publish_stored(wait=False)`` is
        stored; raises as a publish would. Brokers that always store before returning have
        nothing to do."""
        return None

    def publish_once(self, queue: str, envelope: Envelope, key: str, ttl_s: float) -> bool:
        """Publish ``envelope`` unless ``key`` was already used within ``ttl_s`` seconds, as
        one atomic step across processes; True when published. Only brokers declaring
        :attr:`Capabilities.atomic_publish_once` implement it; their keys are the ones the
        coordination store of the same service takes in ``add_once``. Beat uses it with a
        deterministic key (entry name + scheduled time) so several schedulers never
        double-fire (docs/decisions/0012)."""
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
        """Dead-letter messages that can never be processed: log them first
        (:meth:`log_rejected`), then remove them, so a crash in between brings a message back
        rather than losing it."""

    def log_rejected(self, deliveries: Sequence[Delivery], reason: str) -> None:
        """Hand ``deliveries`` with ``reason`` to :attr:`rejected_sink` (the coordination
        store's rejected log), or log a warning per message when there is none."""
        if not deliveries:
            return
        sink = self.rejected_sink
        if sink is not None:
            sink([(d.queue, d.envelope, reason) for d in deliveries])
            return
        for d in deliveries:
            logger.warning("rejected message %s from queue %s: %s", d.task_id, d.queue, reason)

    def renew(self, deliveries: Sequence[Delivery]) -> None:  # noqa: B027 - optional hook
        """Extend the lease of messages this consumer still holds (called periodically)."""

    def holds(self, delivery: Delivery) -> bool:
        """Whether this consumer still holds ``delivery``'s claim. True unless the claim was
        lost for good and the message given to the next claim already: a broker without
        leases (RabbitMQ) gives a lost connection's unacked messages back at once. The worker
        asks before it starts a reserved job and drops one no longer held, so the message
        runs once, from its redelivery."""
        return True

    def settle_with(self, backend: object) -> Settler | None:
        """A function that stores results in ``backend`` and acks deliveries in ONE round trip
        (one transaction or pipeline) when both live on the same server; None otherwise. The
        worker then settles each batch with it (results always become visible no later than
        the acks). ``backend`` is duck-typed: each broker looks for the attributes of a backend
        on its own service (brokers never import backends)."""
        return None

    def settle_behind_with(self, backend: object) -> Settler | None:
        """Like :meth:`settle_with`, for early acks only: a function that sends the records
        and the acks together and returns once they have left this process, without waiting
        for the server (each command idempotent, sent again on a broken connection). The
        worker uses it before a solo pool's next task starts. None when the broker cannot."""
        return None

    def confirm_behind(self) -> None:
        """Wait until everything sent write-behind (acks, ``settle_behind_with``) has been
        applied by the server; a no-op for a broker that sends nothing that way."""
        return None

    # -- broadcast -----------------------------------------------------------------------------
    def broadcast(self, channel: str, payload: bytes) -> None:
        """Deliver ``payload`` to every current subscriber of ``channel`` (fire and forget: a
        subscriber that is not there misses it). Needs :attr:`Capabilities.broadcast`."""
        raise NotImplementedError(f"{type(self).__name__} does not support broadcast")

    def subscribe(self, channel: str) -> Subscription:
        """A subscription that receives what is broadcast on ``channel`` from now on."""
        raise NotImplementedError(f"{type(self).__name__} does not support broadcast")

    # -- queues --------------------------------------------------------------------------------
    @abc.abstractmethod
    def purge(self, queues: Sequence[str]) -> int:
        """Delete every waiting (unclaimed) message on ``queues``; returns how many."""

    @abc.abstractmethod
    def queue_size(self, queue: str) -> int:
        """Messages waiting on ``queue`` (ready or scheduled, not claimed)."""

    def oldest_age_s(self, queue: str) -> float | None:
        """Seconds since the oldest message now ready on ``queue`` was published or fell due
        (scheduled and claimed messages do not count); None when none is ready or the
        transport cannot tell."""
        return None

    # -- crash recovery --------------------------------------------------------------------------
    def consumer_name(self) -> str:
        """The name this process's consumers of this broker hold messages under (made again
        when the node or the process changes)."""
        key = (self.node, PROCESS.pid)
        if self._consumer_key != key:
            self._consumer_name = consumer_name(self.node, self.token)
            self._consumer_key = key
        return self._consumer_name

    def bind_node(self, hostname: str) -> None:
        """Name this broker's consumers after worker node ``hostname`` (``-n``), so a later
        incarnation of the node can tell its messages. Call it once, before consuming:
        messages claimed under an earlier name come back only when their lease runs out."""
        self.node = hostname

    def reclaim_node(
        self,
        hostname: str,
        queues: Sequence[str],
        node_announced: Callable[[], bool] | None = None,
    ) -> int:
        """Requeue now the messages held by dead earlier incarnations of worker node
        ``hostname`` (:meth:`Holder.is_dead`; live holders, such as a duplicate worker with
        the same name, keep theirs); returns how many. ``queues`` are where to look for
        brokers that cannot find a node's messages otherwise (Redis); others look everywhere.
        ``node_announced`` answers whether the node has a live presence record (the
        coordination store's ``is_announced``); without it, holders on other machines count
        as alive. Call it at worker start, after :meth:`bind_node` and before the worker first
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
