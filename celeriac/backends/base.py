"""The result backend contract: where task states and results live.

A backend stores opaque encoded result records (Celery's result meta, see ``result_meta``)
under a task id, with the record's state passed alongside so the backend can wake waiters
when a task becomes ready without decoding anything. It never sees a Task.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping, Sequence
from typing import Any

from celeriac import states


class ResultBackend(abc.ABC):
    """Base class of every result backend."""

    schemes: tuple[str, ...] = ()
    shared_across_processes: bool = True
    #: True: results travel back to the process that sent the task (``rpc://``). The app then
    #: passes ``broker_url``, ``result_serializer``, ``result_accept``, ``result_persistent``
    #: and ``result_expires_s`` in the options, sends each task with ``reply_to`` =
    #: :meth:`reply_queue`, and the worker tells the backend each task's ``reply_to`` through
    #: :meth:`note_reply_to` before it stores the task's records. Checked once, not per task.
    replies_to_caller: bool = False

    def __init__(self, url: str, *, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.options: dict[str, Any] = dict(options or {})

    @abc.abstractmethod
    def store(self, task_id: str, state: str, payload: bytes, expires_s: float | None) -> None:
        """Save ``payload`` (an encoded result record in ``state``) for ``task_id``; replaces any
        earlier record. ``expires_s`` is the record's lifetime (None: keep)."""

    def store_many(self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None) -> None:
        """Save many ``(task_id, state, payload)`` records, in as few round trips as possible."""
        for task_id, state, payload in items:
            self.store(task_id, state, payload, expires_s)

    def store_many_behind(
        self, items: Sequence[tuple[str, str, bytes]], expires_s: float | None
    ) -> None:
        """:meth:`store_many`, allowed to return once the records have left this process,
        before the server confirms them (the worker stores a solo pool's results this way
        before its next task starts: a task that kills the process cannot lose them). A
        backend without a cheaper way stores and waits, which is what this default does."""
        self.store_many(items, expires_s)

    def confirm_behind(self) -> None:
        """Wait until every record sent by :meth:`store_many_behind` has been applied
        (nothing to wait for in this default, which stores and waits)."""
        return None

    @abc.abstractmethod
    def get(self, task_id: str) -> bytes | None:
        """The stored record, or None (unknown, forgotten or expired)."""

    def get_many(self, task_ids: Sequence[str]) -> list[bytes | None]:
        return [self.get(task_id) for task_id in task_ids]

    @abc.abstractmethod
    def get_state(self, task_id: str) -> str | None:
        """The stored state without the payload, or None."""

    def wait(self, task_id: str, timeout_s: float | None, interval_s: float = 0.05) -> bytes | None:
        """Block until the record is in a ready state (SUCCESS, FAILURE, REVOKED) and return it;
        None when ``timeout_s`` passes first. Backends override this to wait on a notification."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = min(interval_s, 0.005)
        while True:
            if self.get_state(task_id) in states.READY_STATES:
                return self.get(task_id)
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(delay)
            delay = min(delay * 2, interval_s)

    @abc.abstractmethod
    def forget(self, task_id: str) -> None:
        """Delete the record."""

    @abc.abstractmethod
    def incr(self, key: str, amount: int, expires_s: float | None) -> int:
        """Atomically add ``amount`` to counter ``key`` (created at 0) and return the new value;
        the chord primitive (increment-and-test). The counter expires after ``expires_s``."""

    def delete_counter(self, key: str) -> None:  # noqa: B027 - optional hook
        """Drop counter ``key``."""

    @abc.abstractmethod
    def cleanup(self) -> int:
        """Delete expired records now; returns how many (backends with native expiry return 0)."""

    def note_reply_to(self, task_id: str, reply_to: str) -> None:  # noqa: B027 - optional hook
        """Where ``task_id``'s records go (backends that reply to the caller only)."""

    def reply_queue(self) -> str | None:
        """The ``reply_to`` of tasks this process sends (backends that reply to the caller)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (the backend reconnects on next use)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
