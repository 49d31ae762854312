"""The coordination store contract: the small shared state workers, beat and ``app.control``
agree on, apart from moving messages (docs/decisions/0012).

What lives here, and nowhere else:

* **revokes**: task ids (and terminate marks, see :mod:`celeriac.control`) remembered for a
  while, so every worker, and one started later, honours them;
* **presence**: what each worker announces about itself, kept for a ttl (``inspect``, and the
  "is this node alive" question of :meth:`Broker.reclaim_node <celeriac.brokers.base.Broker>`);
* **dedup keys**: :meth:`CoordinationStore.add_once`, a key that can be taken once within a ttl
  (beat's exactly-once when the transport cannot publish once atomically);
* **the rejected-message log**: what brokers dead-lettered, with the reason, readable later;
* **token buckets**: :meth:`CoordinationStore.take_tokens`, the shared buckets of global task
  rate limits (docs/decisions/0018-rate-limits.md).

A store never sees a Task and never moves messages. Stores are found by URL scheme like
brokers (entry-point group ``celeriac.coordination``); the built-ins keep the layouts the
brokers used before this contract existed (SQLite tables ``revoked``, ``workers``, ``dedupe``,
``rejected``; Redis keys ``celeriac:revoked``, ``celeriac:workers``, ``celeriac:workers:exp``,
``celeriac:once:<key>``, ``celeriac:rejected``), so existing data is read as before.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celeriac.message import Envelope

#: Rejected-message records a store keeps; older ones are dropped so a poison stream cannot
#: fill the disk or memory (each record is bounded by :func:`celeriac.protocol.dead_letter`).
MAX_REJECTED = 10_000


def take_from_bucket(
    tokens: float, updated_s: float, now_s: float, rate_per_s: float, capacity: float, wanted: int
) -> tuple[int, float, float]:
    """One token-bucket step, pure: the bucket held ``tokens`` at ``updated_s``; refill it to
    ``now_s`` (a clock that went back refills nothing), take up to ``wanted`` whole tokens.
    Returns (granted, tokens left, seconds until one more token)."""
    tokens = min(capacity, tokens + max(0.0, now_s - updated_s) * rate_per_s)
    granted = max(0, min(wanted, int(tokens)))
    tokens -= granted
    return granted, tokens, max(0.0, (1.0 - tokens) / rate_per_s)


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """What a worker announces about itself (read by ``inspect`` and the dashboard)."""

    hostname: str
    info: Mapping[str, Any]
    last_seen_s: float


class CoordinationStore(abc.ABC):
    """Base class of every coordination store. Subclasses set ``schemes`` and implement the
    abstract methods. Nothing connects before first use; :meth:`close` may be followed by
    more use (the store reconnects)."""

    #: URL schemes this store serves, e.g. ("sqlite",).
    schemes: tuple[str, ...] = ()
    #: Whether several processes can share this store (False for memory://).
    shared_across_processes: bool = True

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.options: dict[str, Any] = dict(options or {})

    # -- revokes -------------------------------------------------------------------------------
    @abc.abstractmethod
    def revoke(self, task_ids: Sequence[str], expires_s: float) -> None:
        """Remember ``task_ids`` as revoked for ``expires_s`` seconds (a shorter revoke never
        cuts a longer one short)."""

    @abc.abstractmethod
    def revoked(self, task_ids: Sequence[str]) -> set[str]:
        """Which of ``task_ids`` are revoked now."""

    # -- presence ------------------------------------------------------------------------------
    @abc.abstractmethod
    def announce(self, hostname: str, info: Mapping[str, Any], ttl_s: float) -> None:
        """Record that worker ``hostname`` is alive, with a JSON-able ``info`` mapping, for
        ``ttl_s`` seconds."""

    @abc.abstractmethod
    def workers(self) -> list[WorkerRecord]:
        """Workers announced within their ttl, sorted by hostname."""

    @abc.abstractmethod
    def withdraw(self, hostname: str) -> None:
        """Forget worker ``hostname`` (clean shutdown); unknown names are ignored."""

    def is_announced(self, hostname: str) -> bool:
        """Whether worker ``hostname`` has a live presence record."""
        return any(record.hostname == hostname for record in self.workers())

    # -- dedup keys ----------------------------------------------------------------------------
    @abc.abstractmethod
    def add_once(self, key: str, ttl_s: float) -> bool:
        """Take ``key`` for ``ttl_s`` seconds, atomically across processes: True for the one
        caller that took it, False while it is taken."""

    # -- rejected-message log ------------------------------------------------------------------
    @abc.abstractmethod
    def record_rejected(self, items: Sequence[tuple[str, Envelope, str]]) -> None:
        """Log ``(queue, envelope, reason)`` of messages a broker dead-lettered. The store keeps
        a bounded copy (:func:`celeriac.protocol.dead_letter`) and the newest
        :data:`MAX_REJECTED` records."""

    @abc.abstractmethod
    def rejected(self, limit: int = 100) -> list[tuple[Envelope, str]]:
        """The most recent ``limit`` rejected messages with their reasons, oldest first."""

    # -- token buckets -------------------------------------------------------------------------
    def take_tokens(
        self, key: str, rate_per_s: float, capacity: float, wanted: int
    ) -> tuple[int, float]:
        """Take up to ``wanted`` whole tokens from bucket ``key``, atomically across processes:
        ``(granted, wait_s)``, ``wait_s`` being the seconds until one more token is there (0
        when one is). The bucket refills at ``rate_per_s`` (the caller's rate, each call) up
        to ``capacity`` tokens, starts full, and is timed by the store's one clock (a clock
        that goes back refills nothing). A bucket left alone until it would be full again may
        be forgotten (it reads as full). A store that cannot share buckets raises
        NotImplementedError (workers then limit on their own)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no token buckets")

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (the store reconnects on next use)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
