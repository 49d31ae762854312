"""Task history for the dashboard: Celery task events merged into one row per task, kept in a
store (memory, SQLite or Redis) so a dashboard restart loses nothing.

``open_history(url)`` opens a :class:`HistoryStore`: ``memory://`` (this process only),
``sqlite:///path`` (:mod:`celeriac.dashboard.history_sqlite`) or ``redis://...``
(:mod:`celeriac.dashboard.history_redis`). Rules every store keeps:

- :meth:`HistoryStore.record` merges ``task-*`` events (other events are ignored) into a
  :data:`TaskDict` per uuid, with :class:`celeriac.events.State`'s rules: an event that arrives
  late (a ``task-started`` after ``task-succeeded``) only fills in fields and never moves the
  state back; ``task-rejected`` ends any unfinished task;
- merging is idempotent: an event recorded again (by a second dashboard writing the same store,
  or a replay) changes nothing. An event whose time field (``received``, ``started``...) is not
  newer than the one stored is a repeat: it fills in missing fields only. A ``task-retried``
  older than the task's current state is late, like any other event;
- hostile events never make ``record`` raise: an event without a string ``uuid`` of at most
  :data:`MAX_UUID_CHARS` characters, or without a positive number in ``timestamp`` or
  ``local_received`` (every receiver adds it), is dropped; fields of the wrong type become
  None (numbers) or text (strings), and text longer than :data:`MAX_TEXT_CHARS` is cut;
- ``received_start``/``received_end`` are epoch seconds (inclusive); ``sort_by`` is a field of
  :data:`SORT_FIELDS`, ``-field`` for descending; tasks without the field come first in
  ascending order and last in descending order; the default order is newest event first
  (``-timestamp``, as Flower lists tasks);
- ``search`` is Flower's: words separated by spaces, all of which must match; ``args:x``,
  ``kwargs:x``, ``result:x``, ``name:x``, ``worker:x``, ``uuid:x`` match a substring of that
  field, ``state:X`` the state; a bare word a substring of any of name, uuid, state, worker,
  args, kwargs, result or exception. Matching ignores case;
- the bounds given at open (``max_tasks``, ``max_age_s`` since a task's last event) are applied
  by :meth:`HistoryStore.prune`, which the collector calls periodically, and by ``record``
  after many new tasks.
"""

from __future__ import annotations

import abc
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from celeriac import states
from celeriac._utils.imports import symbol_by_name

__all__ = [
    "MAX_TEXT_CHARS",
    "MAX_UUID_CHARS",
    "SORT_FIELDS",
    "TASK_FIELDS",
    "HistoryStore",
    "MemoryHistory",
    "Query",
    "TaskDict",
    "default_history_url",
    "event_task_ids",
    "merge_event",
    "merge_events",
    "open_history",
]

TaskDict = dict[str, Any]

#: an event whose uuid is longer than this is dropped (Celery's ids are 36 characters)
MAX_UUID_CHARS = 255
#: task and worker names are cut to this length
MAX_NAME_CHARS = 512
#: args, kwargs, result, traceback... are cut to this length
MAX_TEXT_CHARS = 64 * 1024
#: a custom event type (``task-<word>``) longer than this is dropped
MAX_SUBTYPE_CHARS = 64
#: record() prunes after this many new tasks (or max_tasks / 10 when that is smaller)
PRUNE_EVERY = 5000

TIME_FIELDS = ("sent", "received", "started", "succeeded", "failed", "retried", "revoked",
               "rejected")
_NAME_FIELDS = ("name", "worker", "client", "root_id", "parent_id", "exchange", "routing_key",
                "queue")
_TEXT_FIELDS = ("args", "kwargs", "result", "exception", "traceback", "eta", "expires")
_INT_FIELDS = ("retries", "signum")
_BOOL_FIELDS = ("terminated", "expired", "requeue")
#: every key of a TaskDict, in Flower's order
TASK_FIELDS = (
    "uuid", "name", "state", "received", "sent", "started", "succeeded", "failed", "retried",
    "revoked", "rejected", "args", "kwargs", "result", "exception", "traceback", "eta",
    "expires", "retries", "worker", "runtime", "timestamp", "root_id", "parent_id", "children",
    "clock", "client", "exchange", "routing_key", "queue", "terminated", "signum", "expired",
    "requeue",
)
#: the fields ``sort_by`` accepts
SORT_FIELDS = frozenset(TASK_FIELDS) - {"children"}
#: fields a late task-received may still fill in (Celery's merge rules)
_LATE_RECEIVED_FIELDS = ("name", "args", "kwargs", "parent_id", "root_id", "retries", "eta",
                         "expires")
_EVENT_STATES = {
    "sent": states.PENDING, "received": states.RECEIVED, "started": states.STARTED,
    "failed": states.FAILURE, "retried": states.RETRY, "succeeded": states.SUCCESS,
    "revoked": states.REVOKED, "rejected": states.REJECTED,
}
_SEARCH_FIELDS = ("name", "uuid", "state", "worker", "args", "kwargs", "result", "exception")
_SEARCH_QUALIFIERS = frozenset({"args", "kwargs", "result", "name", "worker", "uuid", "state"})


# -- normalising and merging events ---------------------------------------------------------------
def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text: str
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value, default=repr).decode()
        except (TypeError, ValueError):
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    found = float(value)
    return found if math.isfinite(found) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if abs(value) < 2**62 else None


def _event_time(event: dict[str, Any]) -> float | None:
    for key in ("timestamp", "local_received"):
        found = _number(event.get(key))
        if found is not None and found > 0:
            return found
    return None


def empty_task(uuid: str) -> TaskDict:
    task: TaskDict = dict.fromkeys(TASK_FIELDS)
    task.update(uuid=uuid, state=states.PENDING, children=[], clock=0)
    return task


def _fields_of(event: dict[str, Any]) -> dict[str, Any]:
    """The task fields an event carries, cleaned (see the module rules)."""
    out: dict[str, Any] = {}
    for key in _NAME_FIELDS:
        if key in event and key != "worker":
            out[key] = _text(event[key], MAX_NAME_CHARS)
    for key in _TEXT_FIELDS:
        if key in event:
            out[key] = _text(event[key], MAX_TEXT_CHARS)
    for key in _INT_FIELDS:
        if key in event:
            out[key] = _int(event[key])
    for key in _BOOL_FIELDS:
        if key in event:
            value = event[key]
            out[key] = value if isinstance(value, bool) else None
    if "runtime" in event:
        out["runtime"] = _number(event["runtime"])
    return out


def _late(state: str, ts: float, task: TaskDict) -> bool:
    """Whether an event of ``state`` at ``ts`` precedes the task's current state (arrived
    late). Unlike Celery, RETRY is compared by time: a retry older than the current state's
    event is late, and so is any event older than a current RETRY."""
    current = task["state"]
    current_ts = task["timestamp"]
    if state == states.RETRY or current == states.RETRY:
        return current_ts is not None and ts < current_ts
    if state == states.REJECTED:
        return current in states.READY_STATES
    return states.precedence(state) > states.precedence(current)


def merge_event(task: TaskDict | None, event: dict[str, Any]) -> TaskDict | None:
    """``task`` (None: not seen yet) after the task event ``event``, as a new dict; None when
    the event is not a usable task event. See the module rules."""
    type_ = event.get("type")
    uuid = event.get("uuid")
    if not isinstance(type_, str) or not type_.startswith("task-"):
        return None
    if not isinstance(uuid, str) or not uuid or len(uuid) > MAX_UUID_CHARS:
        return None
    if task is not None and task.get("uuid") != uuid:
        raise ValueError("merge_event: the event is about another task")
    subtype = type_[5:]
    if not subtype or len(subtype) > MAX_SUBTYPE_CHARS:
        return None
    state = _EVENT_STATES.get(subtype) or subtype.upper()
    ts = _event_time(event)
    if ts is None:
        return None
    new = dict(task) if task is not None else empty_task(uuid)
    fields = _fields_of(event)
    hostname = _text(event.get("hostname"), MAX_NAME_CHARS) \
        if isinstance(event.get("hostname"), str) else None
    if subtype == "sent":
        fields.setdefault("client", hostname)
    elif hostname is not None:
        fields["worker"] = hostname
    clock = _int(event.get("clock"))
    if clock is not None and clock > (new["clock"] or 0):
        new["clock"] = clock
    if subtype in TIME_FIELDS:
        previous = new[subtype]
        repeat = previous is not None and ts <= previous
        if not repeat:
            new[subtype] = ts
    else:
        repeat = new["state"] == state and new["timestamp"] is not None and ts <= new["timestamp"]
    if repeat:
        # Seen already: fill in what is missing, never move anything.
        for key, value in fields.items():
            if new.get(key) is None and value is not None:
                new[key] = value
    elif _late(state, ts, new):
        # Fills in fields (only Celery's few for a late task-received); keeps the worker
        # that ran the task's current state.
        keep = _LATE_RECEIVED_FIELDS if state == states.RECEIVED else tuple(fields)
        for key in keep:
            value = fields.get(key)
            if value is not None and not (key == "worker" and new["worker"] is not None):
                new[key] = value
    else:
        new["state"] = state
        new["timestamp"] = ts
        new.update((key, value) for key, value in fields.items() if value is not None)
    return new


def event_task_ids(events: Iterable[Any]) -> list[str]:
    """The task ids the usable task events of ``events`` are about, each once."""
    return list(dict.fromkeys(e["uuid"] for e in events if isinstance(e, dict) and _usable(e)))


def merge_events(events: Iterable[Any], stored: dict[str, TaskDict]) -> dict[str, TaskDict]:
    """The tasks ``events`` change, merged over ``stored`` (the stored tasks of
    :func:`event_task_ids`, those that exist); tasks the events leave as stored are left
    out."""
    current = dict(stored)
    changed: set[str] = set()
    for event in events:
        if not isinstance(event, dict) or not _usable(event):
            continue
        merged = merge_event(current.get(event["uuid"]), event)
        if merged is not None and merged != current.get(event["uuid"]):
            current[event["uuid"]] = merged
            changed.add(event["uuid"])
    return {uuid: current[uuid] for uuid in changed if current[uuid] != stored.get(uuid)}


def _usable(event: dict[str, Any]) -> bool:
    type_, uuid = event.get("type"), event.get("uuid")
    return (isinstance(type_, str) and type_.startswith("task-") and isinstance(uuid, str)
            and 0 < len(uuid) <= MAX_UUID_CHARS)


def dumps(task: TaskDict) -> bytes:
    """A task as stored (children are not: they are found from the children's parent_id)."""
    return orjson.dumps({k: v for k, v in task.items() if k != "children"})


def loads(data: bytes | str) -> TaskDict:
    found = orjson.loads(data)
    task = empty_task(str(found.get("uuid")))
    task.update({k: v for k, v in found.items() if k in task})
    return task


# -- queries -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    """The filters and order of ``tasks()`` / ``count()``, checked (see the module rules)."""

    workername: str | None = None
    taskname: str | None = None
    state: str | None = None
    received_start: float | None = None
    received_end: float | None = None
    search: str | None = None
    sort_field: str = "timestamp"
    descending: bool = True

    @classmethod
    def make(cls, sort_by: str | None = None, **filters: Any) -> Query:
        """A query from ``tasks()``'s keyword arguments; ValueError for an unknown sort field
        or filter, or a time that is not a number."""
        field, descending = "timestamp", True
        if sort_by:
            descending = sort_by.startswith("-")
            field = sort_by.lstrip("-")
            if field not in SORT_FIELDS:
                raise ValueError(f"sort_by: unknown task field {field!r}")
        unknown = set(filters) - {"workername", "taskname", "state", "received_start",
                                  "received_end", "search"}
        if unknown:
            raise ValueError(f"unknown task filter(s): {', '.join(sorted(unknown))}")
        for key in ("received_start", "received_end"):
            value = filters.get(key)
            if value is not None and _number(value) is None:
                raise ValueError(f"{key}: expected epoch seconds, got {value!r}")
            if value is not None:
                filters[key] = float(value)
        search = filters.get("search")
        filters["search"] = (search.strip() or None) if isinstance(search, str) else None
        return cls(sort_field=field, descending=descending, **filters)

    @property
    def filtered(self) -> bool:
        return any(v is not None for v in (self.workername, self.taskname, self.state,
                                           self.received_start, self.received_end, self.search))

    def terms(self) -> list[tuple[str | None, str]]:
        """The search words as (field or None for any field, lower-cased text)."""
        out: list[tuple[str | None, str]] = []
        for word in (self.search or "").split():
            key, sep, value = word.partition(":")
            if sep and key.lower() in _SEARCH_QUALIFIERS and value:
                out.append((key.lower(), value.lower()))
            else:
                out.append((None, word.lower()))
        return out

    def matches(self, task: TaskDict) -> bool:
        """Whether ``task`` passes every filter."""
        if self.workername is not None and task["worker"] != self.workername:
            return False
        if self.taskname is not None and task["name"] != self.taskname:
            return False
        if self.state is not None and task["state"] != self.state:
            return False
        received = task["received"]
        if self.received_start is not None and (received is None
                                                or received < self.received_start):
            return False
        if self.received_end is not None and (received is None or received > self.received_end):
            return False
        for field, text in self.terms():
            if field == "state":
                if str(task["state"]).lower() != text:
                    return False
            elif field is not None:
                if text not in str(task[field] or "").lower():
                    return False
            elif not any(text in str(task[f] or "").lower() for f in _SEARCH_FIELDS):
                return False
        return True

    def sort(self, tasks: list[TaskDict]) -> list[TaskDict]:
        """``tasks`` in this query's order (None first ascending, last descending)."""
        field = self.sort_field

        def key(task: TaskDict) -> tuple[bool, Any, str]:
            value = task[field]
            return (value is not None, value if value is not None else 0, task["uuid"])

        return sorted(tasks, key=key, reverse=self.descending)


def page(items: list[TaskDict], limit: int | None, offset: int) -> list[TaskDict]:
    start = max(0, offset)
    return items[start:] if limit is None else items[start:start + max(0, limit)]


def empty_series(since_s: float, bucket_s: float, now_s: float) -> list[dict[str, Any]]:
    """The buckets of :meth:`HistoryStore.series` with zero counts."""
    if not bucket_s > 0 or not math.isfinite(bucket_s) or not math.isfinite(since_s):
        raise ValueError("series: since_s and bucket_s must be finite, bucket_s > 0")
    start_s = math.floor(since_s / bucket_s) * bucket_s
    n = max(1, math.floor((now_s - start_s) / bucket_s) + 1)
    if n > 10_000:
        raise ValueError(f"series: {n} buckets; at most 10000 (use a larger bucket_s)")
    return [{"t": start_s + i * bucket_s, "succeeded": 0, "failed": 0, "received": 0,
             "runtime_avg_s": None} for i in range(n)]


def fill_series(buckets: list[dict[str, Any]], since_s: float, bucket_s: float,
                field: str, times: Iterable[float], runtimes: Iterable[float | None] = ()
                ) -> None:
    """Count ``times`` (epoch seconds) into ``buckets[...][field]``; with ``runtimes`` (one per
    time, for ``succeeded``), also set each bucket's runtime_avg_s."""
    sums: dict[int, list[float]] = {}
    runtime_list = list(runtimes)
    start_s = buckets[0]["t"]
    for i, at in enumerate(times):
        if at < since_s:
            continue
        index = int((at - start_s) // bucket_s)
        if 0 <= index < len(buckets):
            buckets[index][field] += 1
            runtime = runtime_list[i] if i < len(runtime_list) else None
            if runtime is not None:
                sums.setdefault(index, []).append(runtime)
    for index, values in sums.items():
        buckets[index]["runtime_avg_s"] = sum(values) / len(values)


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
