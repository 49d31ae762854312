"""Task history for the dashboard: task rows (:mod:`celeriac.dashboard.task_rows`) kept in a
store (memory, SQLite or Redis) so a dashboard restart loses nothing, queried with
:mod:`celeriac.dashboard.task_query`.

``open_history(url)`` opens a :class:`HistoryStore`: ``memory://`` (this process only),
``sqlite:///path`` (:mod:`celeriac.dashboard.history_sqlite`) or ``redis://...``
(:mod:`celeriac.dashboard.history_redis`). Rules every store keeps:

- :meth:`HistoryStore.record` merges events into rows by the merge rules of
  :mod:`~celeriac.dashboard.task_rows` (idempotent; hostile events are dropped, never raise);
- ``tasks()``/``count()`` filter, sort and search by :mod:`~celeriac.dashboard.task_query`'s
  rules;
- the bounds given at open (``max_tasks``, ``max_age_s`` since a task's last event) are applied
  by :meth:`HistoryStore.prune`, which the collector calls periodically, and by ``record``
  after many new tasks.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Sequence
from typing import Any

from celeriac._utils.imports import symbol_by_name
from celeriac.dashboard.task_query import Query, empty_series, fill_series, page
from celeriac.dashboard.task_rows import TaskDict, event_task_ids, merge_events

__all__ = ["HistoryStore", "MemoryHistory", "default_history_url", "open_history"]

#: record() prunes after this many new tasks (or max_tasks / 10 when that is smaller)
PRUNE_EVERY = 5000


# -- the store contract ----------------------------------------------------------------------------
class HistoryStore(abc.ABC):
    """Task history (see the module rules). Thread-safe."""

    url: str

    def __init__(self, *, max_tasks: int = 100_000, max_age_s: float = 7 * 86400) -> None:
        self.max_tasks = max(1, int(max_tasks))
        self.max_age_s = float(max_age_s)
        self._new_since_prune = 0

    def record(self, events: Sequence[dict[str, Any]]) -> None:
        """Merge the task events of ``events`` (see the module rules); never raises for what
        the events contain."""
        created = self._record(events)
        self._new_since_prune += created
        if self._new_since_prune >= min(PRUNE_EVERY, max(100, self.max_tasks // 10)):
            self.prune()

    @abc.abstractmethod
    def _record(self, events: Sequence[dict[str, Any]]) -> int:
        """Merge ``events``; returns how many tasks were created."""

    @abc.abstractmethod
    def task(self, task_id: str) -> TaskDict | None:
        """One task with its ``children`` (ids of the tasks whose parent it is)."""

    def tasks(self, *, limit: int | None = None, offset: int = 0, sort_by: str | None = None,
              **filters: Any) -> list[TaskDict]:
        """The tasks passing ``filters`` (workername, taskname, state, received_start,
        received_end, search) in ``sort_by`` order, ``offset`` skipped, at most ``limit``."""
        return self._tasks(Query.make(sort_by, **filters), limit, max(0, int(offset)))

    @abc.abstractmethod
    def _tasks(self, query: Query, limit: int | None, offset: int) -> list[TaskDict]: ...

    def count(self, **filters: Any) -> int:
        """How many tasks pass ``filters`` (those of :meth:`tasks`)."""
        return self._count(Query.make(None, **filters))

    @abc.abstractmethod
    def _count(self, query: Query) -> int: ...

    @abc.abstractmethod
    def task_types(self) -> list[str]:
        """The names of the tasks kept, sorted."""

    @abc.abstractmethod
    def series(self, since_s: float, bucket_s: float) -> list[dict[str, Any]]:
        """Per ``bucket_s`` seconds from ``since_s`` (epoch seconds) to now, oldest first:
        ``{"t": bucket start (a multiple of bucket_s), "succeeded": n, "failed": n,
        "received": n, "runtime_avg_s": mean runtime of the bucket's successes or None}``; a
        task counts in the bucket of its ``succeeded``, ``failed`` and ``received`` times.
        ValueError for more than 10000 buckets."""

    def prune(self) -> int:
        """Forget tasks whose last event is older than max_age_s, then the oldest beyond
        max_tasks; returns how many went."""
        self._new_since_prune = 0
        return self._prune(time.time() - self.max_age_s)

    @abc.abstractmethod
    def _prune(self, older_than_s: float) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class MemoryHistory(HistoryStore):
    """History in this process's memory (lost on exit): for tests and a quick look."""

    def __init__(self, url: str = "memory://", **bounds: Any) -> None:
        super().__init__(**bounds)
        self.url = url
        self._tasks_by_id: dict[str, TaskDict] = {}
        #: parent id -> the ids of its children (in the order they were first seen)
        self._children: dict[str, dict[str, None]] = {}
        self._lock = threading.Lock()

    def _record(self, events: Sequence[dict[str, Any]]) -> int:
        with self._lock:
            found = self._tasks_by_id
            stored = {u: found[u] for u in event_task_ids(events) if u in found}
            changed = merge_events(events, stored)
            created = sum(1 for uuid in changed if uuid not in found)
            found.update(changed)
            for uuid, task in changed.items():
                if task["parent_id"] is not None:
                    self._children.setdefault(task["parent_id"], {})[uuid] = None
            return created

    def _with_children(self, tasks: list[TaskDict]) -> list[TaskDict]:
        return [dict(t, children=list(self._children.get(t["uuid"], ()))) for t in tasks]

    def task(self, task_id: str) -> TaskDict | None:
        with self._lock:
            task = self._tasks_by_id.get(task_id)
            return None if task is None else self._with_children([task])[0]

    def _tasks(self, query: Query, limit: int | None, offset: int) -> list[TaskDict]:
        with self._lock:
            found = [t for t in self._tasks_by_id.values() if query.matches(t)]
            return self._with_children(page(query.sort(found), limit, offset))

    def _count(self, query: Query) -> int:
        with self._lock:
            return sum(1 for t in self._tasks_by_id.values() if query.matches(t))

    def task_types(self) -> list[str]:
        with self._lock:
            return sorted({t["name"] for t in self._tasks_by_id.values() if t["name"]})

    def series(self, since_s: float, bucket_s: float) -> list[dict[str, Any]]:
        buckets = empty_series(since_s, bucket_s, time.time())
        with self._lock:
            tasks = list(self._tasks_by_id.values())
        done = [t for t in tasks if t["succeeded"] is not None]
        fill_series(buckets, since_s, bucket_s, "succeeded", [t["succeeded"] for t in done],
                    [t["runtime"] for t in done])
        fill_series(buckets, since_s, bucket_s, "failed",
                    [t["failed"] for t in tasks if t["failed"] is not None])
        fill_series(buckets, since_s, bucket_s, "received",
                    [t["received"] for t in tasks if t["received"] is not None])
        return buckets

    def _prune(self, older_than_s: float) -> int:
        with self._lock:
            found = self._tasks_by_id
            gone = [u for u, t in found.items() if (t["timestamp"] or 0) < older_than_s]
            for uuid in gone:
                self._forget(uuid)
            extra = len(found) - self.max_tasks
            if extra > 0:
                oldest = sorted(found.values(), key=lambda t: (t["timestamp"] or 0, t["uuid"]))
                for task in oldest[:extra]:
                    self._forget(task["uuid"])
                    gone.append(task["uuid"])
            return len(gone)

    def _forget(self, uuid: str) -> None:
        task = self._tasks_by_id.pop(uuid)
        self._children.pop(uuid, None)
        siblings = self._children.get(task["parent_id"] or "")
        if siblings is not None:
            siblings.pop(uuid, None)

    def close(self) -> None:
        """Nothing to release (the tasks stay until the object goes)."""


# -- opening -------------------------------------------------------------------------------------
_REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "unix", "sentinel")
#: the store classes by URL scheme
_STORES = {
    "sqlite": "celeriac.dashboard.history_sqlite:SQLiteHistory",
    "db+sqlite": "celeriac.dashboard.history_sqlite:SQLiteHistory",
    "redis": "celeriac.dashboard.history_redis:RedisHistory",
}
DEFAULT_URL = "sqlite:///celeriac-dashboard.db"


def open_history(url: str, *, max_tasks: int = 100_000,
                 max_age_s: float = 7 * 86400) -> HistoryStore:
    """The history store ``url`` names: ``memory://``, ``sqlite:///path`` or a Redis URL
    (``redis://host:port/db``, ``rediss://``, ``unix://``, ``sentinel://``); a bare file path
    means SQLite. ValueError for another scheme."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    bounds: dict[str, Any] = {"max_tasks": max_tasks, "max_age_s": max_age_s}
    if scheme == "memory":
        return MemoryHistory(url, **bounds)
    if scheme == "":
        url = f"sqlite:///{url}"
    store_class = _STORES.get("redis" if scheme in _REDIS_SCHEMES else scheme or "sqlite")
    if store_class is None:
        raise ValueError(
            f"history store {url!r}: expected memory://, sqlite:///path or a redis:// URL"
        )
    # By name: the Redis store needs redis-py, loaded only when a Redis URL is used.
    found: HistoryStore = symbol_by_name(store_class)(url, **bounds)
    return found


def default_history_url(app: Any) -> str:
    """Where the dashboard keeps history unless told: the app's result backend when it is
    SQLite (a table of its own in the same file) or Redis (keys under
    ``celeriac.dashboard:``), else ``sqlite:///celeriac-dashboard.db`` in the current
    directory."""
    url = app.result_backend_url
    if isinstance(url, str) and "://" in url:
        scheme = url.partition("://")[0].lower()
        if scheme in ("sqlite", "db+sqlite") or scheme in _REDIS_SCHEMES:
            return url
    return DEFAULT_URL
