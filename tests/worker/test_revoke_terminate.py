"""``revoke(terminate=True)`` stops a running task on every pool (issue 8, item 7): prefork
signals the child, threads and solo raise in the task's thread. The task ends REVOKED and the
worker goes on with the next task."""

from __future__ import annotations

import signal
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.worker import Worker
from tests.worker.support import start_worker, task_module, wait_until, worker_code

TASKS = textwrap.dedent(
    """
    import os, time
    from celeriac import Celery

    app = Celery("stoppable", broker=os.environ["STOPPABLE_URL"])

    @app.task(bind=True)
    def forever(self, marker_dir):
        open(os.path.join(marker_dir, f"started-{self.request.id}"), "w").close()
        for _ in range(600):
            time.sleep(0.05)
        return "finished"

    @app.task
    def quick(x):
        return x * 2
    """
)

@pytest.fixture
def stoppable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from task_module("stoppable", TASKS, tmp_path, monkeypatch,
                           {"STOPPABLE_URL": f"sqlite:///{tmp_path / 'broker.db'}"})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("pool", "signame"),
    [("prefork", None), ("prefork", "SIGKILL"), ("threads", None), ("solo", None)],
)
def test_revoke_terminate_stops_the_running_task(
    stoppable: Any, tmp_path: Path, pool: str, signame: str | None
) -> None:
    mod = stoppable
    proc = start_worker(tmp_path, worker_code("stoppable", pool=pool, concurrency=2))
    try:
        running = mod.forever.delay(str(tmp_path))
        wait_until(lambda: (tmp_path / f"started-{running.id}").exists())
        running.revoke(terminate=True, signal=signame)
        wait_until(lambda: running.state == "REVOKED", timeout_s=10)
        assert mod.quick.delay(21).get(timeout=20) == 42
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    log_text = (tmp_path / "worker.log").read_text()
    assert code == 0, log_text
    assert "Terminating" in log_text, log_text


def test_terminate_sends_task_revoked_with_the_signal(app: Celery) -> None:
    started = threading.Event()

    @app.task
    def spin() -> str:
        started.set()
        for _ in range(600):
            time.sleep(0.05)
        return "finished"

    seen: list[dict[str, Any]] = []

    def on_revoked(sender: Any = None, **kwargs: Any) -> None:
        seen.append(kwargs)

    signals.task_revoked.connect(on_revoked)
    try:
        result = spin.delay()

        def revoke_when_running() -> None:
            started.wait(10)
            result.revoke(terminate=True, signal="SIGUSR1")

        threading.Thread(target=revoke_when_running, daemon=True).start()
        Worker(app, pool="threads", concurrency=1, burst=True,
               install_signal_handlers=False).start()
    finally:
        signals.task_revoked.disconnect(on_revoked)
    assert result.state == "REVOKED"
    assert [(s["terminated"], s["signum"], s["request"].id) for s in seen] == [
        (True, signal.SIGUSR1, result.id)
    ]

