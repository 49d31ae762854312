"""The worker's main loop survives an unexpected error, and gives up with a non-zero exit when
it cannot go on (it never spins or hangs)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from celeriac import Celery
from celeriac.worker import Worker
from celeriac.worker.worker import EXIT_SOFTWARE
from tests.conftest import RunWorker


def test_one_unexpected_error_is_logged_and_the_worker_goes_on(
    app: Celery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    real = app.broker.consume
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("a bug somewhere below the loop")
        return real(*args, **kwargs)

    monkeypatch.setattr(app.broker, "consume", flaky)
    monkeypatch.setattr(Worker, "UNEXPECTED_BACKOFF_S", 0.001)
    worker = Worker(app, pool="solo", burst=True, install_signal_handlers=False)
    assert worker.start() == 0
    assert result.get(timeout=1) == 5
    assert "unexpected error in the main loop" in caplog.text


def test_a_loop_that_cannot_go_on_exits_non_zero(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("always")

    monkeypatch.setattr(app.broker, "consume", broken)
    monkeypatch.setattr(Worker, "UNEXPECTED_BACKOFF_S", 0.001)
    worker = Worker(app, pool="solo", install_signal_handlers=False)  # not burst: runs forever
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(worker.start()), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the worker kept looping"
    assert codes == [EXIT_SOFTWARE]


def test_active_info_gives_wall_clock_start(app: Celery) -> None:
    """``inspect active`` shows when a running task started as epoch seconds (Celery's
    ``time_start``), not a monotonic clock reading."""
    started = threading.Event()
    release = threading.Event()

    @app.task
    def hold() -> None:
        started.set()
        release.wait(5)

    hold.delay()
    worker = Worker(app, pool="threads", concurrency=1, burst=True,
                    install_signal_handlers=False)
    thread = threading.Thread(target=worker.start)
    before = time.time()
    thread.start()
    try:
        assert started.wait(5)
        [info] = app.control.inspect([worker.hostname], timeout=5).active()[worker.hostname]
        assert before - 1 <= info["time_start"] <= time.time()
    finally:
        release.set()
        thread.join(10)


def test_burst_mode_runs_held_jobs_before_it_stops(app: Celery, run_worker: RunWorker) -> None:
    """Jobs a rate limit holds count as work: a burst worker runs them before it stops."""
    started: list[int] = []

    @app.task(name="paced", rate_limit="20/s")
    def paced(n: int) -> None:
        started.append(n)

    for n in range(5):
        paced.delay(n)
    run_worker(pool="threads", concurrency=2)
    assert started == [0, 1, 2, 3, 4]
