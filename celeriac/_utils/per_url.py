"""State shared by every in-process (``memory://``) object of one URL: the memory broker,
result backend and coordination store each keep theirs in a :class:`PerUrl`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerUrl(Generic[T]):
    """URL -> one ``T``, made by ``factory`` on first use; thread-safe."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._states: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> T:
        with self._lock:
            state = self._states.get(url)
            if state is None:
                state = self._states[url] = self._factory()
            return state

    def reset(self, url: str | None = None) -> None:
        """Drop the state of one URL (or all): for tests."""
        with self._lock:
            if url is None:
                self._states.clear()
            else:
                self._states.pop(url, None)
