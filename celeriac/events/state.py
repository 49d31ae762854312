"""``State``: the cluster as the events describe it (Celery's ``app.events.State``).

Feed it every event (``handlers={"*": state.event}``); read ``state.tasks`` (uuid ->
:class:`Task`), ``state.workers`` (hostname -> :class:`Worker`) and the helpers Flower and the
dashboard use. Rules:

- a task's ``state`` follows its events (``task-received`` -> RECEIVED, ``task-started`` ->
  STARTED, ``task-succeeded`` -> SUCCESS...), except that an event arriving late (a
  ``task-started`` after ``task-succeeded``) never moves a task back: it only fills in its
  fields (only name, args, kwargs... for a late ``task-received``), as Celery merges them; one
  difference: ``task-rejected`` moves any unfinished task to REJECTED (Celery's precedence
  would keep it STARTED); each event also sets the task's time field of its kind
  (``received``, ``started``, ``succeeded``...);
- a worker is ``alive`` until ``freq * 2`` seconds after its last heartbeat
  (``worker-online``, ``worker-heartbeat`` or any task event from it), and not after
  ``worker-offline``;
- at most ``max_tasks_in_memory`` tasks and ``max_workers_in_memory`` workers are kept; the
  least recently updated go first;
- thread-safe: :meth:`State.event` and the readers take one lock.
"""

from __future__ import annotations

import heapq
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from celeriac import states

__all__ = ["State", "Task", "Worker"]

#: ``worker-heartbeat`` interval assumed for a worker that did not say (Celery's default)
DEFAULT_FREQ_S = 60.0
#: a worker counts as gone this many ``freq`` after its last heartbeat (Celery's window)
EXPIRE_WINDOW = 2.0
#: heartbeats kept per worker
HEARTBEAT_MAX = 4

TASK_EVENT_TO_STATE = {
    "sent": states.PENDING,
    "received": states.RECEIVED,
    "started": states.STARTED,
    "failed": states.FAILURE,
    "retried": states.RETRY,
    "succeeded": states.SUCCESS,
    "revoked": states.REVOKED,
    "rejected": states.REJECTED,
}
#: fields an out-of-order event of that state may still fill in
MERGE_RULES = {
    states.RECEIVED: (
        "name", "args", "kwargs", "parent_id", "root_id", "retries", "eta", "expires",
    ),
}


def _happened_before(state: str, current: str) -> bool:
    """Whether an event of ``state`` logically precedes a task now in ``current`` (so it
    arrived late). RETRY is never late; REJECTED ends any task not finished yet (Celery's
    precedence would leave a rejected task STARTED)."""
    if state == states.RETRY or current == states.RETRY:
        return False
    if state == states.REJECTED:
        return current in states.READY_STATES
    return states.precedence(state) > states.precedence(current)


class Worker:
    """A worker as its events describe it."""

    _fields = (
        "hostname", "pid", "freq", "heartbeats", "clock", "active", "processed", "loadavg",
        "sw_ident", "sw_ver", "sw_sys",
    )

    def __init__(self, hostname: str | None = None, pid: int | None = None,
                 freq: float = DEFAULT_FREQ_S, **fields: Any) -> None:
        self.hostname = hostname
        self.pid = pid
        self.freq = freq
        self.heartbeats: list[float] = []
        self.clock = 0
        self.active: int | None = None
        self.processed: int | None = None
        self.loadavg: list[float] | None = None
        self.sw_ident: str | None = None
        self.sw_ver: str | None = None
        self.sw_sys: str | None = None
        self.expire_window = EXPIRE_WINDOW
        self.update(fields)

    def update(self, fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if key in self._fields and key != "heartbeats":
                setattr(self, key, value)

    def event(self, subtype: str | None, timestamp: float, local_received: float,
              fields: dict[str, Any]) -> None:
        """Apply one event: ``online``/``heartbeat`` (or None for a task event from this
        worker) count as heartbeats, ``offline`` ends them."""
        if subtype == "offline":
            self.update(fields)
            self.heartbeats = []
            return
        if subtype is not None:
            self.update(fields)
        heartbeats = self.heartbeats
        if not heartbeats or local_received >= heartbeats[-1]:
            heartbeats.append(local_received)
            if len(heartbeats) > HEARTBEAT_MAX:
                del heartbeats[0]

    @property
    def heartbeat_expires(self) -> float:
        """Epoch seconds after which, without a new heartbeat, the worker is gone."""
        last = self.heartbeats[-1] if self.heartbeats else 0.0
        return last + float(self.freq or DEFAULT_FREQ_S) * self.expire_window

    @property
    def alive(self) -> bool:
        return bool(self.heartbeats) and time.time() < self.heartbeat_expires

    @property
    def status_string(self) -> str:
        return "ONLINE" if self.alive else "OFFLINE"

    @property
    def id(self) -> str | None:
        return self.hostname

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._fields}

    def __repr__(self) -> str:
        return f"<Worker: {self.hostname} ({self.status_string} clock:{self.clock})>"


class Task:
    """A task as its events describe it."""

    _fields = (
        "uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded",
        "failed", "retried", "revoked", "args", "kwargs", "eta", "expires", "retries",
        "worker", "result", "exception", "timestamp", "runtime", "traceback", "exchange",
        "routing_key", "clock", "client", "root_id", "parent_id", "queue", "terminated",
        "signum", "expired", "requeue",
    )
    #: what :meth:`info` leaves out when None
    _info_fields = (
        "args", "kwargs", "retries", "result", "eta", "runtime", "expires", "exception",
        "exchange", "routing_key", "root_id", "parent_id",
    )

    def __init__(self, uuid: str | None = None, **fields: Any) -> None:
        self.uuid = uuid
        self.name: str | None = None
        self.state = states.PENDING
        self.received: float | None = None
        self.sent: float | None = None
        self.started: float | None = None
        self.rejected: float | None = None
        self.succeeded: float | None = None
        self.failed: float | None = None
        self.retried: float | None = None
        self.revoked: float | None = None
        self.args: str | None = None
        self.kwargs: str | None = None
        self.eta: str | None = None
        self.expires: str | None = None
        self.retries: int | None = None
        self.worker: Worker | None = None
        self.result: str | None = None
        self.exception: str | None = None
        self.timestamp: float | None = None
        self.runtime: float | None = None
        self.traceback: str | None = None
        self.exchange: str | None = None
        self.routing_key: str | None = None
        self.clock = 0
        self.client: str | None = None
        self.root_id: str | None = None
        self.parent_id: str | None = None
        self.queue: str | None = None
        self.terminated: bool | None = None
        self.signum: int | None = None
        self.expired: bool | None = None
        self.requeue: bool | None = None
        self.update(fields)

    def update(self, fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if key in self._fields and key not in ("uuid", "worker", "state"):
                setattr(self, key, value)

    def event(self, subtype: str, timestamp: float, fields: dict[str, Any]) -> None:
        """Apply one ``task-<subtype>`` event (see the module rules)."""
        state = TASK_EVENT_TO_STATE.get(subtype)
        if state is None:
            state = subtype.upper()  # a custom event type
        else:
            setattr(self, subtype, timestamp)
        current = self.state
        if _happened_before(state, current):
            keep = MERGE_RULES.get(state)
            self.update(fields if keep is None else
                        {key: fields[key] for key in keep if key in fields})
            return
        self.state = state
        self.timestamp = timestamp
        self.update(fields)

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES

    @property
    def origin(self) -> str | None:
        return self.client if self.worker is None else self.worker.hostname

    def info(self, fields: tuple[str, ...] | None = None, extra: tuple[str, ...] = ()
             ) -> dict[str, Any]:
        """The task's set fields (Celery's ``Task.info``)."""
        wanted = (fields or self._info_fields) + tuple(extra)
        return {key: getattr(self, key) for key in wanted if getattr(self, key) is not None}

    def as_dict(self) -> dict[str, Any]:
        found = {key: getattr(self, key) for key in self._fields}
        found["worker"] = self.worker.hostname if self.worker is not None else None
        return found

    def __repr__(self) -> str:
        return f"<Task: {self.name}({self.uuid}) {self.state} clock:{self.clock}>"


class _ByKey(dict[str, "weakref.WeakSet[Task]"]):
    """``state.tasks_by_type[name]`` (the tasks of that name) that can also be called:
    ``state.tasks_by_type(name, limit=None, reverse=True)`` yields ``(uuid, task)`` by time."""

    def __init__(self, call: Callable[..., Iterator[tuple[str, Task]]]) -> None:
        super().__init__()
        self._call = call

    def __missing__(self, key: str) -> weakref.WeakSet[Task]:
        found: weakref.WeakSet[Task] = weakref.WeakSet()
        self[key] = found
        return found

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, Task]]:
        return self._call(*args, **kwargs)


class State:
    """Tasks and workers as the events describe them (see the module rules)."""

    def __init__(
        self,
        callback: Callable[[State, dict[str, Any]], Any] | None = None,
        max_workers_in_memory: int = 5000,
        max_tasks_in_memory: int = 10000,
        on_node_join: Callable[[Worker], Any] | None = None,
        on_node_leave: Callable[[Worker], Any] | None = None,
        **_celery_options: Any,
    ) -> None:
        self.event_callback = callback
        self.max_workers_in_memory = max(1, int(max_workers_in_memory))
        self.max_tasks_in_memory = max(1, int(max_tasks_in_memory))
        self.on_node_join = on_node_join
        self.on_node_leave = on_node_leave
        self.tasks: OrderedDict[str, Task] = OrderedDict()
        self.workers: OrderedDict[str, Worker] = OrderedDict()
        self.tasks_by_type = _ByKey(self._tasks_by_type)
        self.tasks_by_worker = _ByKey(self._tasks_by_worker)
        self.event_count = 0
        self.task_count = 0
        self._mutex = threading.RLock()

    # -- feeding -------------------------------------------------------------------------------
    def event(self, event: dict[str, Any]) -> tuple[tuple[Any, bool], str | None]:
        """Apply one event; returns ``((task or worker, created), group)`` as Celery does
        (``((None, False), None)`` for an event it cannot use)."""
        with self._mutex:
            result = self._event(event)
        if self.event_callback is not None:
            self.event_callback(self, event)
        return result

    def _event(self, event: dict[str, Any]) -> tuple[tuple[Any, bool], str | None]:
        type_ = event.get("type")
        if not isinstance(type_, str):
            return (None, False), None
        self.event_count += 1
        group, _, subtype = type_.partition("-")
        hostname = event.get("hostname")
        timestamp = event.get("timestamp")
        if not isinstance(timestamp, int | float):
            timestamp = time.time()
        local_received = event.get("local_received")
        if not isinstance(local_received, int | float):
            local_received = time.time()
        fields = {k: v for k, v in event.items()
                  if k not in ("type", "local_received", "timestamp")}
        if group == "worker" and isinstance(hostname, str):
            worker, created = self.get_or_create_worker(hostname)
            was_alive = worker.alive
            worker.event(subtype, float(timestamp), float(local_received), fields)
            if self.on_node_join is not None and subtype in ("online", "heartbeat") \
                    and not was_alive:
                self.on_node_join(worker)
            if self.on_node_leave is not None and subtype == "offline":
                self.on_node_leave(worker)
            return (worker, created), "worker"
        uuid = event.get("uuid")
        if group == "task" and isinstance(uuid, str):
            task, created = self.get_or_create_task(uuid)
            if created:
                self.task_count += 1
            if isinstance(hostname, str) and subtype != "sent":
                worker, _ = self.get_or_create_worker(hostname)
                task.worker = worker
                worker.event(None, float(timestamp), float(local_received), {})
            if subtype == "sent" and isinstance(hostname, str):
                task.client = hostname
            fields.pop("hostname", None)
            before = task.name
            task.event(subtype, float(timestamp), fields)
            if task.name and task.name != before:
                self.tasks_by_type[task.name].add(task)
            if task.worker is not None and task.worker.hostname:
                self.tasks_by_worker[task.worker.hostname].add(task)
            return (task, created), "task"
        return (None, False), None

    def get_or_create_worker(self, hostname: str, **fields: Any) -> tuple[Worker, bool]:
        with self._mutex:
            worker = self.workers.get(hostname)
            if worker is not None:
                self.workers.move_to_end(hostname)
                if fields:
                    worker.update(fields)
                return worker, False
            worker = self.workers[hostname] = Worker(hostname, **fields)
            while len(self.workers) > self.max_workers_in_memory:
                self.workers.popitem(last=False)
            return worker, True

    def get_or_create_task(self, uuid: str) -> tuple[Task, bool]:
        with self._mutex:
            task = self.tasks.get(uuid)
            if task is not None:
                self.tasks.move_to_end(uuid)
                return task, False
            task = self.tasks[uuid] = Task(uuid)
            while len(self.tasks) > self.max_tasks_in_memory:
                self.tasks.popitem(last=False)
            return task, True

    def clear_tasks(self, ready: bool = True) -> None:
        """Forget the tasks (only the finished ones with ``ready``)."""
        with self._mutex:
            if ready:
                for uuid in [u for u, t in self.tasks.items() if t.ready]:
                    del self.tasks[uuid]
            else:
                self.tasks.clear()

    def clear(self, ready: bool = True) -> None:
        with self._mutex:
            self.clear_tasks(ready)
            self.workers.clear()
            self.event_count = 0
            self.task_count = 0

    def freeze_while(self, fun: Callable[..., Any], *args: Any, clear_after: bool = False,
                     **kwargs: Any) -> Any:
        """Call ``fun`` with no event applied meanwhile."""
        with self._mutex:
            try:
                return fun(*args, **kwargs)
            finally:
                if clear_after:
                    self.clear()

    # -- reading -------------------------------------------------------------------------------
    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, Task]]:
        """``(uuid, task)`` in the order they were last updated, oldest first."""
        with self._mutex:
            items = list(islice(self.tasks.items(), limit))
        yield from items

    def tasks_by_time(self, limit: int | None = None, reverse: bool = True
                      ) -> Iterator[tuple[str, Task]]:
        """``(uuid, task)`` by event time, newest first (oldest first with ``reverse=False``)."""
        with self._mutex:
            items = list(self.tasks.items())
        yield from _by_time(items, limit, reverse)

    def _tasks_by_type(self, name: str, limit: int | None = None, reverse: bool = True
                       ) -> Iterator[tuple[str, Task]]:
        with self._mutex:
            items = [(t.uuid or "", t) for t in self.tasks_by_type.get(name, ())]
        yield from _by_time(items, limit, reverse)

    def _tasks_by_worker(self, hostname: str, limit: int | None = None, reverse: bool = True
                         ) -> Iterator[tuple[str, Task]]:
        with self._mutex:
            items = [(t.uuid or "", t) for t in self.tasks_by_worker.get(hostname, ())]
        yield from _by_time(items, limit, reverse)

    def task_types(self) -> list[str]:
        """The names of the tasks seen, sorted."""
        with self._mutex:
            return sorted({t.name for t in self.tasks.values() if t.name})

    def alive_workers(self) -> list[Worker]:
        with self._mutex:
            return [w for w in self.workers.values() if w.alive]

    def __repr__(self) -> str:
        return f"<State: events={self.event_count} tasks={self.task_count}>"


def _by_time(items: list[tuple[str, Task]], limit: int | None, reverse: bool
             ) -> Iterator[tuple[str, Task]]:
    def key(item: tuple[str, Task]) -> float:
        return item[1].timestamp or 0.0

    if limit is None:
        yield from sorted(items, key=key, reverse=reverse)
    elif reverse:
        yield from heapq.nlargest(limit, items, key=key)
    else:
        yield from heapq.nsmallest(limit, items, key=key)
