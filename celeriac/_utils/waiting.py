"""Waiting for a record that another thread or process writes, without hammering the store.

Rule: poll with a back-off from 1 ms doubling to ``interval_s``; a :class:`Signal` notified by
a writer in this process ends the sleep at once (other processes' writes are found by polling).
The generation read before each poll closes the gap between a poll and the sleep after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

MIN_POLL_S = 0.001


class Signal(Protocol):
    generation: int

    def wait(self, seen_generation: int, timeout_s: float) -> bool: ...


def poll_until(
    poll: Callable[[], bytes | None], signal: Signal, timeout_s: float | None, interval_s: float
) -> bytes | None:
    """The first non-None ``poll()``; None once ``timeout_s`` has passed (None: never)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    max_poll_s = max(interval_s, MIN_POLL_S)
    delay = MIN_POLL_S
    while True:
        seen = signal.generation
        payload = poll()
        if payload is not None:
            return payload
        sleep_s = delay
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sleep_s = min(sleep_s, remaining)
        if not signal.wait(seen, sleep_s):
            delay = min(delay * 2, max_poll_s)
