"""Helpers of the events tests: a task module, a worker thread of this process (memory:// cannot
be shared with a worker process), and collecting events until a condition."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from celeriac import Celery
from celeriac.events import EventReceiver
from tests.support.workers import ThreadWorker as SharedThreadWorker

#: fields every event carries once received
COMMON = {"type", "hostname", "timestamp", "utcoffset", "pid", "clock", "local_received"}
#: Celery's fields of each event type (its Event Reference), besides COMMON
FIELDS = {
    "task-sent": {"uuid", "name", "args", "kwargs", "retries", "eta", "expires", "queue",
                  "exchange", "routing_key", "root_id", "parent_id"},
    "task-received": {"uuid", "name", "args", "kwargs", "retries", "eta", "expires",
                      "root_id", "parent_id"},
    "task-started": {"uuid"},
    "task-succeeded": {"uuid", "result", "runtime"},
    "task-failed": {"uuid", "exception", "traceback"},
    "task-retried": {"uuid", "exception", "traceback"},
    "task-rejected": {"uuid", "requeue"},
    "task-revoked": {"uuid", "terminated", "signum", "expired"},
    "worker-online": {"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"},
    "worker-heartbeat": {"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver",
                         "sw_sys"},
    "worker-offline": {"freq", "active", "processed", "loadavg", "sw_ident", "sw_ver",
                       "sw_sys"},
}

TASKS = textwrap.dedent(
    """
    import os
    from celeriac import Celery
    from celeriac.exceptions import Reject

    app = Celery("evtasks", broker=os.environ["EVTASKS_URL"],
                 backend=os.environ["EVTASKS_BACKEND"])

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def boom():
        raise ValueError("boom")

    @app.task(bind=True, max_retries=1)
    def flaky(self):
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return "second try"

    @app.task
    def refuse():
        raise Reject("not today", requeue=False)
    """
)


class ThreadWorker(SharedThreadWorker):
    """A worker of this process in a thread (memory:// cannot be shared with a subprocess);
    a ``threads`` pool of two unless told otherwise."""

    def __init__(self, app: Celery, **options: Any) -> None:
        options.setdefault("pool", "threads")
        options.setdefault("concurrency", 2)
        super().__init__(app, **options)


def collect(receiver: EventReceiver, until: Callable[[list[dict[str, Any]]], bool],
            timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Events from ``receiver`` until ``until(events)`` holds; fails after ``timeout_s``."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while not until(got):
        assert time.monotonic() < deadline, f"events never came; got {summary(got)}"
        try:
            for event in receiver.itercapture(timeout=0.5):
                got.append(event)
                if until(got) or time.monotonic() >= deadline:
                    break
        except TimeoutError:
            pass
    return got


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e.get("uuid", e["hostname"])) for e in events]


def of(events: list[dict[str, Any]], type_: str, uuid: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_ and (uuid is None or e.get("uuid") == uuid)]


def wait_for(predicate: Callable[[], object], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


def iter_lines(path: Path) -> Iterator[str]:
    yield from path.read_text().splitlines()
