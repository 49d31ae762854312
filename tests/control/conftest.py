"""Fixtures of the remote-control contract suite: a task module on each broker that can
broadcast, and workers on it: real worker processes on SQLite and Redis; on memory://, which
lives in one process, a worker in a thread of the test process.

A later transport joins the suite by adding its kind to ``CONTROL_KINDS`` (the URL comes from
:func:`tests.support.services.broker_url`, which skips when its service is not reachable).
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import backend_beside, broker_url
from tests.support.workers import ThreadWorker
from tests.worker.support import start_worker, task_module, worker_code

CONTROL_KINDS = ["memory", "sqlite", "redis", "amqp", "postgresql"]

TASKS = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery

    app = Celery("ctlproj", broker=os.environ["CTL_URL"], backend=os.environ["CTL_BACKEND"])

    @app.task(bind=True)
    def sleepy(self, seconds, marker_dir=None):
        if marker_dir:
            open(os.path.join(marker_dir, f"started-{self.request.id}"), "w").close()
        time.sleep(seconds)
        return seconds

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def busy(seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return "done"
    """
)


@pytest.fixture(params=CONTROL_KINDS)
def ctl(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The task module ``ctlproj`` on a fresh broker of each kind."""
    with broker_url(request.param, tmp_path) as url:
        backend = backend_beside(request.param, url, tmp_path)
        yield from task_module("ctlproj", TASKS, tmp_path, monkeypatch,
                               {"CTL_URL": url, "CTL_BACKEND": backend})


WorkerFactory = Callable[..., Any]


@pytest.fixture
def spawn(ctl: Any, tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start worker processes on ``ctlproj``; each is stopped (SIGTERM) at the end and must
    exit cleanly."""
    started: list[tuple[Any, str]] = []

    def spawn_worker(hostname: str = "w1@test", **options: Any) -> Any:
        options.setdefault("pool", "threads")
        options.setdefault("concurrency", 2)
        log_name = f"{hostname.split('@')[0]}.log"
        proc: Any
        if ctl.app.conf.broker_url.startswith("memory://"):
            (tmp_path / log_name).write_text("(in-process worker: its log is pytest's)\n")
            proc = ThreadWorker(ctl.app, hostname=hostname, **options).start()
        else:
            proc = start_worker(tmp_path, worker_code("ctlproj", hostname=hostname, **options),
                                log_name=log_name)
        started.append((proc, log_name))
        assert ctl.app.control.wait_for_workers(len(started), timeout_s=30) >= len(started), \
            (tmp_path / log_name).read_text()
        return proc

    yield spawn_worker
    for proc, log_name in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert code == 0, (tmp_path / log_name).read_text()
