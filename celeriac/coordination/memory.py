"""``memory://``: coordination state in this process, shared by every store of the same URL."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac._utils.per_url import PerUrl
from celeriac.coordination.base import (
    MAX_REJECTED,
    CoordinationStore,
    WorkerRecord,
    take_from_bucket,
)
from celeriac.message import Envelope
from celeriac.protocol import dead_letter

# Expired dedup keys are dropped when this many are held.
_DEDUPE_PRUNE_AT = 1024


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    revoked: dict[str, float] = field(default_factory=dict)
    # hostname -> (info, last seen, expires at)
    workers: dict[str, tuple[Mapping[str, Any], float, float]] = field(default_factory=dict)
    # dedup key -> when it expires
    dedupe: dict[str, float] = field(default_factory=dict)
    rejected: list[tuple[Envelope, str]] = field(default_factory=list)
    # token bucket key -> (tokens, when they were counted, monotonic s)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)


_states = PerUrl(_State)


class MemoryCoordination(CoordinationStore):
    schemes = ("memory",)
    shared_across_processes = False

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self._s = _states.get(url)

    def revoke(self, task_ids: Sequence[str], expires_s: float) -> None:
        until = time.time() + expires_s
        with self._s.lock:
            revoked = self._s.revoked
            for task_id in task_ids:
                revoked[task_id] = max(revoked.get(task_id, 0.0), until)

    def revoked(self, task_ids: Sequence[str]) -> set[str]:
        revoked = self._s.revoked
        if not revoked:
            return set()
        now = time.time()
        with self._s.lock:
            return {t for t in task_ids if revoked.get(t, 0.0) > now}

    def announce(self, hostname: str, info: Mapping[str, Any], ttl_s: float) -> None:
        now = time.time()
        with self._s.lock:
            self._s.workers[hostname] = (dict(info), now, now + ttl_s)

    def workers(self) -> list[WorkerRecord]:
        now = time.time()
        with self._s.lock:
            return sorted(
                (
                    WorkerRecord(host, info, seen)
                    for host, (info, seen, until) in self._s.workers.items()
                    if until > now
                ),
                key=lambda r: r.hostname,
            )

    def withdraw(self, hostname: str) -> None:
        with self._s.lock:
            self._s.workers.pop(hostname, None)

    def is_announced(self, hostname: str) -> bool:
        with self._s.lock:
            held = self._s.workers.get(hostname)
        return held is not None and held[2] > time.time()

    def add_once(self, key: str, ttl_s: float) -> bool:
        s = self._s
        now = time.time()
        with s.lock:
            if s.dedupe.get(key, 0.0) > now:
                return False
            if len(s.dedupe) >= _DEDUPE_PRUNE_AT:
                s.dedupe = {k: until for k, until in s.dedupe.items() if until > now}
            s.dedupe[key] = now + ttl_s
        return True

    def take_tokens(
        self, key: str, rate_per_s: float, capacity: float, wanted: int
    ) -> tuple[int, float]:
        with self._s.lock:
            now_s = time.monotonic()
            tokens, updated_s = self._s.buckets.get(key, (capacity, now_s))
            granted, left, wait_s = take_from_bucket(
                tokens, updated_s, now_s, rate_per_s, capacity, wanted)
            self._s.buckets[key] = (left, now_s)
        return granted, wait_s

    def record_rejected(self, items: Sequence[tuple[str, Envelope, str]]) -> None:
        records = [dead_letter(envelope, reason) for _queue, envelope, reason in items]
        with self._s.lock:
            rejected = self._s.rejected
            rejected.extend(records)
            if len(rejected) > MAX_REJECTED:
                del rejected[: len(rejected) - MAX_REJECTED]

    def rejected(self, limit: int = 100) -> list[tuple[Envelope, str]]:
        if limit <= 0:
            return []
        with self._s.lock:
            return list(self._s.rejected[-limit:])


def reset(url: str | None = None) -> None:
    """Drop the shared state of one memory URL (or all): for tests."""
    _states.reset(url)
