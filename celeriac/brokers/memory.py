"""``memory://``: an in-process broker for tests and single-process use.

Queues are shared by every MemoryBroker with the same URL in one process, so a producer
app and a worker built from another app instance see the same messages.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac.brokers.base import Broker, WorkerRecord
from celeriac.message import Delivery, Envelope
from celeriac.protocol import check_envelope, dead_letter


@dataclass
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    # queue -> heap of (-priority, seq, envelope)
    ready: dict[str, list[tuple[int, int, Envelope]]] = field(default_factory=dict)
    # heap of (eta, seq, queue, envelope)
    scheduled: list[tuple[float, int, str, Envelope]] = field(default_factory=list)
    # tag -> (queue, envelope, lease_until)
    claimed: dict[int, tuple[str, Envelope, float]] = field(default_factory=dict)
    revoked: dict[str, float] = field(default_factory=dict)
    rejected: list[tuple[Envelope, str]] = field(default_factory=list)
    workers: dict[str, tuple[Mapping[str, Any], float, float]] = field(default_factory=dict)
    # seq -> times delivered, for messages that went back to a queue after a delivery
    redelivered: dict[int, int] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    # publish_once key -> when it expires
    dedupe: dict[str, float] = field(default_factory=dict)


# Expired publish_once keys are dropped when this many are held.
_DEDUPE_PRUNE_AT = 1024
# Rejected-message records kept (each bounded by protocol.dead_letter); older ones are dropped.
_MAX_REJECTED = 10_000

_states: dict[str, _State] = {}
_states_lock = threading.Lock()


def _state_for(url: str) -> _State:
    with _states_lock:
        state = _states.get(url)
        if state is None:
            state = _states[url] = _State()
        return state


class MemoryBroker(Broker):
    schemes = ("memory",)
    shared_across_processes = False

    def __init__(self, url: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, transport_options=transport_options)
        self._s = _state_for(url)

    def publish(self, queue: str, envelope: Envelope) -> None:
        self.publish_many([(queue, envelope)])

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        s = self._s
        now = time.time()
        with s.lock:
            for queue, envelope in items:
                self._put(queue, envelope, now)
            s.lock.notify_all()

    def publish_once(self, queue: str, envelope: Envelope, key: str, ttl_s: float) -> bool:
        s = self._s
        now = time.time()
        with s.lock:
            if s.dedupe.get(key, 0.0) > now:
                return False
            if len(s.dedupe) >= _DEDUPE_PRUNE_AT:
                s.dedupe = {k: until for k, until in s.dedupe.items() if until > now}
            s.dedupe[key] = now + ttl_s
            self._put(queue, envelope, now)
            s.lock.notify_all()
        return True

    def _put(self, queue: str, envelope: Envelope, now: float) -> None:
        s = self._s
        eta = envelope.eta_timestamp()
        if eta is not None and eta > now:
            heapq.heappush(s.scheduled, (eta, next(s.seq), queue, envelope))
        else:
            heapq.heappush(
                s.ready.setdefault(queue, []), (-envelope.priority, next(s.seq), envelope)
            )

    def _promote(self, now: float) -> None:
        s = self._s
        while s.scheduled and s.scheduled[0][0] <= now:
            _, seq, queue, envelope = heapq.heappop(s.scheduled)
            heapq.heappush(s.ready.setdefault(queue, []), (-envelope.priority, seq, envelope))
        expired = [tag for tag, (_, _, until) in s.claimed.items() if until < now]
        for tag in expired:
            queue, envelope, _ = s.claimed.pop(tag)
            self._back_to_queue(queue, envelope, tag)

    def _back_to_queue(self, queue: str, envelope: Envelope, tag: int) -> None:
        s = self._s
        s.redelivered[tag] = s.redelivered.get(tag, 0) + 1
        heapq.heappush(s.ready.setdefault(queue, []), (-envelope.priority, tag, envelope))

    def _next_wakeup(self, now: float) -> float:
        s = self._s
        times = [s.scheduled[0][0]] if s.scheduled else []
        times.extend(until for (_, _, until) in s.claimed.values())
        return min(times) - now if times else 3600.0

    def consume(self, queues: Sequence[str], max_messages: int, timeout_s: float) -> list[Delivery]:
        s = self._s
        deadline = time.monotonic() + timeout_s
        with s.lock:
            while True:
                now = time.time()
                self._promote(now)
                out: list[Delivery] = []
                while len(out) < max_messages:
                    best: str | None = None
                    for q in queues:
                        heap = s.ready.get(q)
                        if heap and (best is None or heap[0][:2] < s.ready[best][0][:2]):
                            best = q
                    if best is None:
                        break
                    _, tag, envelope = heapq.heappop(s.ready[best])
                    s.claimed[tag] = (best, envelope, now + self.lease_s)
                    earlier = s.redelivered.get(tag, 0)
                    # An envelope of the wrong shape (put in by hand) is delivered as malformed.
                    checked, problem = check_envelope(envelope)
                    out.append(Delivery(checked, best, tag, earlier > 0, earlier + 1, problem))
                if out:
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                s.lock.wait(min(remaining, max(self._next_wakeup(now), 0.001)))

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._s.lock:
            for d in deliveries:
                self._s.claimed.pop(d.tag, None)
                self._s.redelivered.pop(d.tag, None)

    def requeue(self, deliveries: Sequence[Delivery]) -> None:
        s = self._s
        with s.lock:
            for d in deliveries:
                if s.claimed.pop(d.tag, None) is not None:
                    self._back_to_queue(d.queue, d.envelope, d.tag)
            s.lock.notify_all()

    def reject(self, deliveries: Sequence[Delivery], reason: str) -> None:
        records = [dead_letter(d.envelope, reason) for d in deliveries]
        s = self._s
        with s.lock:
            for d in deliveries:
                s.claimed.pop(d.tag, None)
                s.redelivered.pop(d.tag, None)
            s.rejected.extend(records)
            if len(s.rejected) > _MAX_REJECTED:
                del s.rejected[: len(s.rejected) - _MAX_REJECTED]

    def renew(self, deliveries: Sequence[Delivery]) -> None:
        s = self._s
        until = time.time() + self.lease_s
        with s.lock:
            for d in deliveries:
                held = s.claimed.get(d.tag)
                if held is not None:
                    s.claimed[d.tag] = (held[0], held[1], until)

    def purge(self, queues: Sequence[str]) -> int:
        s = self._s
        with s.lock:
            count = 0
            for q in queues:
                count += len(s.ready.pop(q, []))
            keep = [item for item in s.scheduled if item[2] not in queues]
            count += len(s.scheduled) - len(keep)
            heapq.heapify(keep)
            s.scheduled = keep
            return count

    def queue_size(self, queue: str) -> int:
        s = self._s
        with s.lock:
            return len(s.ready.get(queue, [])) + sum(1 for i in s.scheduled if i[2] == queue)

    def rejected(self, limit: int = 100) -> list[tuple[Envelope, str]]:
        with self._s.lock:
            return list(self._s.rejected[-limit:])

    def revoke(self, task_ids: Sequence[str], expires_s: float) -> None:
        until = time.time() + expires_s
        with self._s.lock:
            for task_id in task_ids:
                self._s.revoked[task_id] = until

    def revoked(self, task_ids: Sequence[str]) -> set[str]:
        now = time.time()
        revoked = self._s.revoked
        if not revoked:
            return set()
        with self._s.lock:
            return {t for t in task_ids if revoked.get(t, 0.0) > now}

    def announce(self, hostname: str, info: Mapping[str, Any], ttl_s: float) -> None:
        now = time.time()
        with self._s.lock:
            self._s.workers[hostname] = (dict(info), now, now + ttl_s)

    def workers(self) -> list[WorkerRecord]:
        now = time.time()
        with self._s.lock:
            return [
                WorkerRecord(host, info, seen)
                for host, (info, seen, until) in self._s.workers.items()
                if until > now
            ]

    def withdraw(self, hostname: str) -> None:
        with self._s.lock:
            self._s.workers.pop(hostname, None)


def reset(url: str | None = None) -> None:
    """Drop the shared state of one memory URL (or all): for tests."""
    with _states_lock:
        if url is None:
            _states.clear()
        else:
            _states.pop(url, None)
