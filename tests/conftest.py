"""Shared fixtures: an app on a private memory:// broker and a burst-mode worker runner."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import Celery, config
from celeriac.worker import Worker

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def _fresh_setting_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """SettingNotImplementedWarning is sent once per process; each test starts afresh so
    whether a test sees it does not depend on which tests ran before."""
    monkeypatch.setattr(config, "_WARNED", set())


@pytest.fixture
def memory_url() -> str:
    return f"memory://{uuid.uuid4().hex}"


@pytest.fixture
def app(memory_url: str) -> Iterator[Celery]:
    application = Celery("t", broker=memory_url, backend=memory_url)
    yield application
    application.close()


RunWorker = Callable[..., Worker]


@pytest.fixture
def run_worker(app: Celery) -> RunWorker:
    """Run a worker until its queues are empty and nothing runs (burst mode)."""

    def run(target: Celery | None = None, **options: Any) -> Worker:
        options.setdefault("pool", "solo")
        options.setdefault("install_signal_handlers", False)
        worker = Worker(target or app, burst=True, **options)
        worker.start()
        return worker

    return run
