"""Fixtures of the canvas suite: ``canvas_app`` on each broker+backend, with the test tasks.

Every test runs on the memory, SQLite and Redis transports (``CANVAS_KINDS``).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from celeriac import Celery
from celeriac.backends import memory as memory_backend
from celeriac.brokers import memory as memory_broker
from celeriac.worker import Worker
from tests.canvas.tasks import Tasks, define
from tests.redis.support import SPARE_DB

CANVAS_KINDS = ["memory", "sqlite", "redis"]

# Hypothesis keeps its caches outside the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "celeriac-hypothesis")
#: a Redis database no other suite uses (see tests/redis/support.py)
CANVAS_REDIS_DB = SPARE_DB


def make_app(kind: str, tmp_path: Path) -> Celery:
    if kind == "memory":
        url = f"memory://canvas-{uuid.uuid4().hex}"
        return Celery("c", broker=url, backend=url)
    if kind == "sqlite":
        return Celery("c", broker=f"sqlite:///{tmp_path / 'c.db'}")
    if kind == "redis":
        from tests.redis.support import redis_url

        url = redis_url(CANVAS_REDIS_DB)
        return Celery("c", broker=url, backend=url)
    raise AssertionError(f"unknown canvas kind {kind}")


@pytest.fixture(params=CANVAS_KINDS)
def canvas_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    app = make_app(request.param, tmp_path)
    yield app
    close_app(app)


def close_app(app: Celery) -> None:
    app.close()
    url = app.broker_url
    if url.startswith("memory://"):
        memory_broker.reset(url)
        memory_backend.reset(url)
    elif url.startswith("redis://"):
        from tests.redis.support import drop_keys

        drop_keys(url)


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    app = make_app("memory", Path("."))
    yield app
    close_app(app)


@pytest.fixture
def tasks(canvas_app: Celery) -> Tasks:
    return define(canvas_app)


@pytest.fixture
def memory_tasks(memory_app: Celery) -> Tasks:
    return define(memory_app)


Drain = Callable[..., Worker]


def drain_app(app: Celery, **options: Any) -> Worker:
    """Run a burst-mode worker until the queues are empty and nothing runs."""
    options.setdefault("pool", "solo")
    options.setdefault("install_signal_handlers", False)
    worker = Worker(app, burst=True, **options)
    worker.start()
    return worker


@pytest.fixture
def drain(canvas_app: Celery) -> Drain:
    def run(**options: Any) -> Worker:
        return drain_app(canvas_app, **options)

    return run
