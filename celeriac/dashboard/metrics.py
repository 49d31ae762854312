"""``GET /metrics``: Prometheus text exposition with Flower's metric names, plus queue depth.

Flower's metrics (same names, types and labels, so its Grafana dashboards and alerts work):

- ``flower_events_total{task, type, worker}`` counter: events seen, by type;
- ``flower_task_runtime_seconds{task, worker}`` histogram: ``runtime`` of task-succeeded;
- ``flower_task_prefetch_time_seconds{task, worker}`` gauge: started - received, last task;
- ``flower_worker_prefetched_tasks{task, worker}`` gauge: received and not yet started;
- ``flower_worker_online{worker}`` gauge: 1 while the worker sends heartbeats;
- ``flower_worker_number_of_currently_executing_tasks{worker}`` gauge: the heartbeat's active.

celeriac's own, read through the broker's public ``queue_size`` / ``oldest_age_s``:

- ``celeriac_queue_length{queue}`` gauge: messages waiting;
- ``celeriac_queue_oldest_age_seconds{queue}`` gauge: age of the oldest ready message (absent
  when the queue is empty or the transport cannot tell).

Counters start at zero when the dashboard starts (as Flower's); events come from the
collector's subscription, counted by a daemon thread.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.dashboard.collector import Collector

__all__ = ["RUNTIME_BUCKETS_S", "Metrics", "format_labels"]

#: prometheus_client's default histogram buckets (Flower uses them)
RUNTIME_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                     7.5, 10.0, math.inf)
#: task names remembered from task-received / task-sent, to label later events
_MAX_NAMES = 50_000
#: label sets kept per metric: a flood of distinct task names cannot grow memory forever
_MAX_SERIES = 10_000
Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_labels(labels: Iterable[tuple[str, str]]) -> str:
    """``{a="x",b="y"}`` with the exposition format's escapes ('' for no labels)."""
    inner = ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(RUNTIME_BUCKETS_S)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        for i, bound in enumerate(RUNTIME_BUCKETS_S):
            if value <= bound:
                self.buckets[i] += 1


class Metrics:
    """Counts events into Flower's metrics; :meth:`render` writes the exposition text."""

    def __init__(self) -> None:
        self.events: dict[Labels, int] = {}
        self.runtime: dict[Labels, _Histogram] = {}
        self.prefetch_time_s: dict[Labels, float] = {}
        self.prefetched: dict[Labels, int] = {}
        self._names: OrderedDict[str, str] = OrderedDict()
        self._received_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue[dict[str, Any]] | None = None
        self._collector: Collector | None = None

    # -- feeding ---------------------------------------------------------------------------------
    def start(self, collector: Collector) -> None:
        self._collector = collector
        self._queue = collector.subscribe()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="celeriac-dashboard-metrics",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._collector is not None and self._queue is not None:
            self._collector.unsubscribe(self._queue)
        self._queue = None

    def _run(self) -> None:
        subscription = self._queue
        assert subscription is not None
        while not self._stop.is_set():
            try:
                event = subscription.get(timeout=0.2)
            except queue.Empty:
                continue
            self.record(event)

    def record(self, event: Mapping[str, Any]) -> None:
        """Count one event; anything that is not a well-formed event is ignored."""
        if not isinstance(event, Mapping):
            return
        type_ = event.get("type")
        worker = event.get("hostname")
        if not isinstance(type_, str) or not isinstance(worker, str):
            return
        uuid = event.get("uuid")
        uuid = uuid if isinstance(uuid, str) else None
        with self._lock:
            name = self._task_name(uuid, event.get("name"))
            self._bump(self.events, (("task", name), ("type", type_), ("worker", worker)))
            key = (("task", name), ("worker", worker))
            if type_ == "task-received" and uuid is not None:
                _remember(self._received_at, uuid, _float(event.get("timestamp")))
                self.prefetched[key] = self.prefetched.get(key, 0) + 1
            elif type_ == "task-started" and uuid is not None:
                received = self._received_at.pop(uuid, None)
                started = _float(event.get("timestamp"))
                if received is not None and started is not None:
                    self.prefetch_time_s[key] = max(started - received, 0.0)
                    self.prefetched[key] = max(self.prefetched.get(key, 0) - 1, 0)
            elif type_ == "task-succeeded":
                runtime = _float(event.get("runtime"))
                if runtime is not None and runtime >= 0:
                    if key not in self.runtime and len(self.runtime) >= _MAX_SERIES:
                        return
                    self.runtime.setdefault(key, _Histogram()).observe(runtime)

    def _task_name(self, uuid: str | None, name: Any) -> str:
        if isinstance(name, str) and name:
            if uuid is not None:
                _remember(self._names, uuid, name[:200])
            return name[:200]
        if uuid is not None:
            return self._names.get(uuid, "")
        return ""

    @staticmethod
    def _bump(counter: dict[Labels, int], key: Labels) -> None:
        if key in counter or len(counter) < _MAX_SERIES:
            counter[key] = counter.get(key, 0) + 1

    # -- rendering -------------------------------------------------------------------------------
    def render(self, workers: Mapping[str, Mapping[str, Any]],
               queues: Iterable[Mapping[str, Any]]) -> str:
        """The exposition text: counted metrics, then ``workers`` (``collector.workers()``) and
        ``queues`` (``{"name", "messages", "oldest_age_s"}`` items)."""
        out: list[str] = []
        with self._lock:
            _family(out, "flower_events_total", "counter", "Number of events",
                    self.events.items())
            out.append("# HELP flower_task_runtime_seconds Task runtime")
            out.append("# TYPE flower_task_runtime_seconds histogram")
            for labels, hist in sorted(self.runtime.items()):
                for bound, count in zip(RUNTIME_BUCKETS_S, hist.buckets, strict=True):
                    le = format_labels((*labels, ("le", _number(bound))))
                    out.append(f"flower_task_runtime_seconds_bucket{le} {count}")
                out.append(f"flower_task_runtime_seconds_count{format_labels(labels)} "
                           f"{hist.count}")
                out.append(f"flower_task_runtime_seconds_sum{format_labels(labels)} "
                           f"{_number(hist.total)}")
            _family(out, "flower_task_prefetch_time_seconds", "gauge",
                    "The time the task spent waiting at the worker to be executed",
                    self.prefetch_time_s.items())
            _family(out, "flower_worker_prefetched_tasks", "gauge",
                    "Number of tasks of given type prefetched at a worker",
                    self.prefetched.items())
        online = [((("worker", name),), 1 if info.get("status") else 0)
                  for name, info in workers.items()]
        _family(out, "flower_worker_online", "gauge", "Worker online status", online)
        active = [((("worker", name),), _float(info.get("active")) or 0)
                  for name, info in workers.items()]
        _family(out, "flower_worker_number_of_currently_executing_tasks", "gauge",
                "Number of tasks currently executing at a worker", active)
        queue_items = list(queues)
        _family(out, "celeriac_queue_length", "gauge", "Messages waiting on the queue",
                [((("queue", str(q["name"])),), q.get("messages") or 0) for q in queue_items])
        _family(out, "celeriac_queue_oldest_age_seconds", "gauge",
                "Seconds since the oldest ready message on the queue was published",
                [((("queue", str(q["name"])),), q["oldest_age_s"]) for q in queue_items
                 if q.get("oldest_age_s") is not None])
        return "\n".join(out) + "\n"


def _family(out: list[str], name: str, kind: str, help_text: str,
            samples: Iterable[tuple[Labels, float]]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in sorted(samples):
        out.append(f"{name}{format_labels(labels)} {_number(value)}")


def _remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
    if value is None:
        return
    table[key] = value
    table.move_to_end(key)
    while len(table) > _MAX_NAMES:
        table.popitem(last=False)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
