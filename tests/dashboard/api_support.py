"""Helpers of the dashboard API tests: an app on the memory broker and result store, a memory
history, and a stand-in collector for the unit tests that need no worker (the live tests use
the real Collector with real worker processes)."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from starlette.testclient import TestClient

from celeriac import Celery
from celeriac.dashboard.app import DashboardConfig, create_app
from celeriac.dashboard.history import HistoryStore, open_history


class StubCollector:
    """Collector's interface without a capture thread: tests feed events with :meth:`feed`
    (recorded into history, handed to subscribers) and set worker state directly."""

    def __init__(self, history: HistoryStore) -> None:
        self.history = history
        self.live: dict[str, dict[str, Any]] = {}
        self._subscribers: list[queue.SimpleQueue[dict[str, Any]]] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def workers(self) -> dict[str, dict[str, Any]]:
        return {name: dict(info) for name, info in self.live.items()}

    def subscribe(self) -> queue.SimpleQueue[dict[str, Any]]:
        q: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.SimpleQueue[dict[str, Any]]) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def feed(self, *events: dict[str, Any]) -> None:
        self.history.record(list(events))
        with self._lock:
            for q in self._subscribers:
                for event in events:
                    q.put(event)


def task_events(name: str = "dash.add", worker: str = "w1@host", state: str = "SUCCESS",
                at: float | None = None, args: str = "[1, 2]", runtime_s: float = 0.25,
                task_id: str | None = None) -> list[dict[str, Any]]:
    """Celery events of one task: received, started, then succeeded or failed."""
    at = time.time() if at is None else at
    task_id = task_id or str(uuid.uuid4())
    base = {"uuid": task_id, "hostname": worker, "pid": 1, "utcoffset": 0}
    events = [
        {**base, "type": "task-received", "name": name, "args": args, "kwargs": "{}",
         "retries": 0, "eta": None, "expires": None, "root_id": task_id, "parent_id": None,
         "timestamp": at, "clock": 1},
        {**base, "type": "task-started", "timestamp": at + 0.5, "clock": 2},
    ]
    if state == "SUCCESS":
        events.append({**base, "type": "task-succeeded", "result": "3", "runtime": runtime_s,
                       "timestamp": at + 0.5 + runtime_s, "clock": 3})
    elif state == "FAILURE":
        events.append({**base, "type": "task-failed", "exception": "ValueError('boom')",
                       "traceback": "Traceback...", "timestamp": at + 1, "clock": 3})
    return events


def make_app() -> Celery:
    # a memory:// URL of its own: tests never see each other's messages or results
    url = f"memory://dash-{uuid.uuid4().hex[:8]}"
    app = Celery("dash", broker=url, backend=url)

    @app.task(name="dash.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def client_for(app: Celery, config: DashboardConfig | None = None, **headers: str
               ) -> Iterator[tuple[TestClient, StubCollector]]:
    """A TestClient (lifespan run) over a dashboard with a memory history and a stub
    collector; use with ``yield from`` in a fixture."""
    history = open_history("memory://")
    collector = StubCollector(history)
    asgi = create_app(app, config or DashboardConfig(unauthenticated_api=True),
                      history=history, collector=collector)  # type: ignore[arg-type]
    with TestClient(asgi, headers=headers) as client:
        yield client, collector
    history.close()
    app.close()
