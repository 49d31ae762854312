"""``memory://``: an in-process broker for tests and single-process use.

Queues and broadcast channels are shared by every MemoryBroker with the same URL in one
process, so a producer app and a worker built from another app instance see the same messages.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac._utils.per_url import PerUrl
from celeriac.brokers.base import Broker, Capabilities, Subscription
from celeriac.message import Delivery, Envelope
from celeriac.protocol import check_envelope


@dataclass
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    # queue -> heap of (-priority, seq, envelope)
    ready: dict[str, list[tuple[int, int, Envelope]]] = field(default_factory=dict)
    # heap of (eta, seq, queue, envelope)
    scheduled: list[tuple[float, int, str, Envelope]] = field(default_factory=list)
    # tag -> (queue, envelope, lease_until)
    claimed: dict[int, tuple[str, Envelope, float]] = field(default_factory=dict)
    # seq -> when the message became ready (published, fell due or came back), while it is
    ready_since: dict[int, float] = field(default_factory=dict)
    # seq -> times delivered, for messages that went back to a queue after a delivery
    redelivered: dict[int, int] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    # broadcast channel -> its subscriptions
    channels: dict[str, list[_MemorySubscription]] = field(default_factory=dict)


class _MemorySubscription(Subscription):
    def __init__(self, state: _State, channel: str) -> None:
        self._state = state
        self._channel = channel
        self._cond = threading.Condition()
        self._inbox: list[bytes] = []
        self._closed = False

    def put(self, payload: bytes) -> None:
        with self._cond:
            self._inbox.append(payload)
            self._cond.notify_all()

    def get(self, timeout_s: float) -> list[bytes]:
        with self._cond:
            if not self._inbox and not self._closed:
                self._cond.wait_for(lambda: self._inbox or self._closed, max(timeout_s, 0.0))
            out, self._inbox = self._inbox, []
        return out

    def close(self) -> None:
        with self._state.lock:
            subs = self._state.channels.get(self._channel, [])
            if self in subs:
                subs.remove(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

_states = PerUrl(_State)


class MemoryBroker(Broker):
    schemes = ("memory",)
    shared_across_processes = False
    capabilities = Capabilities(native_delays=True, leases=True, priorities=True, broadcast=True)

    def __init__(self, url: str, *, transport_options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, transport_options=transport_options)
        self._s = _states.get(url)

    def publish(self, queue: str, envelope: Envelope) -> None:
        self.publish_many([(queue, envelope)])

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        s = self._s
        now = time.time()
        with s.lock:
            for queue, envelope in items:
                self._put(queue, envelope, now)
            s.lock.notify_all()

    def _put(self, queue: str, envelope: Envelope, now: float) -> None:
        s = self._s
        eta = envelope.eta_timestamp()
        seq = next(s.seq)
        if eta is not None and eta > now:
            heapq.heappush(s.scheduled, (eta, seq, queue, envelope))
        else:
            s.ready_since[seq] = now
            heapq.heappush(s.ready.setdefault(queue, []), (-envelope.priority, seq, envelope))

    def _promote(self, now: float) -> None:
        s = self._s
        while s.scheduled and s.scheduled[0][0] <= now:
            eta, seq, queue, envelope = heapq.heappop(s.scheduled)
            s.ready_since[seq] = eta
            heapq.heappush(s.ready.setdefault(queue, []), (-envelope.priority, seq, envelope))
        expired = [tag for tag, (_, _, until) in s.claimed.items() if until < now]
        for tag in expired:
            queue, envelope, _ = s.claimed.pop(tag)
            self._back_to_queue(queue, envelope, tag)

    def _back_to_queue(self, queue: str, envelope: Envelope, tag: int) -> None:
        s = self._s
        s.redelivered[tag] = s.redelivered.get(tag, 0) + 1
        s.ready_since[tag] = time.time()
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
                    s.ready_since.pop(tag, None)
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
        self.log_rejected(deliveries, reason)
        s = self._s
        with s.lock:
            for d in deliveries:
                s.claimed.pop(d.tag, None)
                s.redelivered.pop(d.tag, None)

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
                purged = s.ready.pop(q, [])
                for _, seq, _ in purged:
                    s.ready_since.pop(seq, None)
                count += len(purged)
            keep = [item for item in s.scheduled if item[2] not in queues]
            count += len(s.scheduled) - len(keep)
            heapq.heapify(keep)
            s.scheduled = keep
            return count

    def queue_size(self, queue: str) -> int:
        s = self._s
        with s.lock:
            return len(s.ready.get(queue, [])) + sum(1 for i in s.scheduled if i[2] == queue)

    def oldest_age_s(self, queue: str) -> float | None:
        s = self._s
        with s.lock:
            self._promote(time.time())
            since = [s.ready_since.get(seq) for _, seq, _ in s.ready.get(queue, ())]
        known = [t for t in since if t is not None]
        return max(time.time() - min(known), 0.0) if known else None

    # -- broadcast -----------------------------------------------------------------------------
    def broadcast(self, channel: str, payload: bytes) -> None:
        with self._s.lock:
            subscribers = list(self._s.channels.get(channel, ()))
        for subscription in subscribers:
            subscription.put(bytes(payload))

    def subscribe(self, channel: str) -> Subscription:
        subscription = _MemorySubscription(self._s, channel)
        with self._s.lock:
            self._s.channels.setdefault(channel, []).append(subscription)
        return subscription


def reset(url: str | None = None) -> None:
    """Drop the shared state of one memory URL (or all): for tests."""
    _states.reset(url)
