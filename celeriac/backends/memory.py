"""``memory://`` result backend: records in a process-wide dict, shared per URL."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac import states
from celeriac._utils.per_url import PerUrl
from celeriac.backends.base import ResultBackend


@dataclass
class _Store:
    cond: threading.Condition = field(default_factory=threading.Condition)
    # task_id -> (state, payload, expires_at or None)
    records: dict[str, tuple[str, bytes, float | None]] = field(default_factory=dict)
    counters: dict[str, tuple[int, float | None]] = field(default_factory=dict)


_stores = PerUrl(_Store)


class MemoryBackend(ResultBackend):
    schemes = ("memory", "cache+memory")
    shared_across_processes = False

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options=options)
        self._s = _stores.get(url)

    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        self.store_many([(task_id, state, payload)], expires_s)

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        until = time.time() + expires_s if expires_s else None
        with self._s.cond:
            for task_id, state, payload in items:
                self._s.records[task_id] = (state, payload, until)
            self._s.cond.notify_all()

    def _live(self, task_id: str) -> tuple[str, bytes, float | None] | None:
        record = self._s.records.get(task_id)
        if record is not None and record[2] is not None and record[2] < time.time():
            self._s.records.pop(task_id, None)
            return None
        return record

    def get(self, task_id: str) -> bytes | None:
        with self._s.cond:
            record = self._live(task_id)
        return None if record is None else record[1]

    def get_state(self, task_id: str) -> str | None:
        with self._s.cond:
            record = self._live(task_id)
        return None if record is None else record[0]

    def wait(self, task_id: str, timeout_s: float | None, interval_s: float = 0.05) -> bytes | None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._s.cond:
            while True:
                record = self._live(task_id)
                if record is not None and record[0] in states.READY_STATES:
                    return record[1]
                if deadline is None:
                    self._s.cond.wait(1.0)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._s.cond.wait(remaining)

    def forget(self, task_id: str) -> None:
        with self._s.cond:
            self._s.records.pop(task_id, None)

    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        with self._s.cond:
            value, until = self._s.counters.get(key, (0, None))
            if until is not None and until < time.time():
                value = 0
            value += amount
            self._s.counters[key] = (value, time.time() + expires_s if expires_s else None)
            return value

    def delete_counter(self, key: str) -> None:
        with self._s.cond:
            self._s.counters.pop(key, None)

    def cleanup(self) -> int:
        now = time.time()
        with self._s.cond:
            dead = [k for k, (_, _, until) in self._s.records.items() if until and until < now]
            for key in dead:
                del self._s.records[key]
            return len(dead)


def reset(url: str | None = None) -> None:
    """Drop the shared state of one memory URL (or all): for tests."""
    _stores.reset(url)
