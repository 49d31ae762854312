"""Nothing a task does escapes the runner: every pool stores an outcome and the worker goes on.

Each case runs on every pool in a burst-mode worker and checks the stored record through
AsyncResult and that ``Worker.start()`` returned normally (before, a solo worker spun at 100%
CPU with the task PENDING, and a threads-pool thread died with its slot never freed).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, Task, signals
from celeriac.exceptions import EncodeError, TimeLimitExceeded
from celeriac.result import AsyncResult
from celeriac.worker import Worker
from tests.test_result_meta import BadRepr, ExitingRepr
from tests.worker.test_pools import ALL_POOLS, app_for_pool, busy_wait, close_app


@pytest.fixture(params=ALL_POOLS)
def pool(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(pool: str, tmp_path: Path) -> Iterator[Celery]:
    application = app_for_pool(pool, tmp_path)
    yield application
    close_app(application)


def run(app: Celery, pool: str, concurrency: int = 1) -> None:
    worker = Worker(app, pool=pool, concurrency=concurrency, burst=True,
                    install_signal_handlers=False)
    assert worker.start() == 0


def run_then_a_good_one(app: Celery, pool: str, bad: Any) -> AsyncResult:
    """Send ``bad``, then a good task; run a burst worker: the good one must still succeed.
    Returns the result of ``bad``."""

    @app.task
    def fine() -> str:
        return "ok"

    failed, after = bad.delay(), fine.delay()
    run(app, pool)
    assert after.get(timeout=1) == "ok"
    return failed


def stand_in_of(exc: BaseException, name: str) -> None:
    """``exc`` is an ordinary Exception named ``name`` (never the exiting builtin)."""
    assert isinstance(exc, Exception)
    assert type(exc).__name__ == name
    assert not isinstance(exc, (SystemExit, KeyboardInterrupt))


def test_exception_argument_whose_repr_raises(app: Celery, pool: str) -> None:
    @app.task
    def raises_bad_arg() -> None:
        raise ValueError(BadRepr())

    failed = run_then_a_good_one(app, pool, raises_bad_arg)
    assert failed.state == "FAILURE"
    assert isinstance(failed.result, ValueError)
    assert "BadRepr" in str(failed.result.args[0])


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("kind", ["repr-raises", "repr-exits", "nested-900-deep"])
def test_result_that_cannot_be_encoded(app: Celery, pool: str, kind: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    @app.task
    def returns_bad() -> object:
        return {"repr-raises": BadRepr, "repr-exits": ExitingRepr,
                "nested-900-deep": lambda: nested(900)}[kind]()

    result = returns_bad.delay()
    with caplog.at_level(logging.INFO, "celeriac.worker"):
        run(app, pool)
    assert result.state == "FAILURE"
    assert isinstance(result.result, EncodeError)
    # The log says what was stored.
    assert "succeeded" not in caplog.text
    assert f"Task {returns_bad.name}[{result.id}] raised unexpected: EncodeError" in caplog.text


def test_sys_exit_in_a_task(app: Celery, pool: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    @app.task
    def exits() -> None:
        pid_file.write_text(str(os.getpid()))
        sys.exit(3)

    @app.task
    def whoami() -> int:
        return os.getpid()

    failed, after = exits.delay(), whoami.delay()
    run(app, pool)
    assert failed.state == "FAILURE"
    stand_in_of(failed.result, "SystemExit")
    assert failed.result.args == (3,)
    with pytest.raises(Exception, match="3") as raised:
        failed.get(timeout=1)
    stand_in_of(raised.value, "SystemExit")
    # The process that ran it (the worker itself, or the prefork child) is still serving.
    assert after.get(timeout=1) == int(pid_file.read_text())


def test_keyboard_interrupt_in_a_task(app: Celery, pool: str) -> None:
    @app.task
    def interrupted() -> None:
        raise KeyboardInterrupt

    failed = run_then_a_good_one(app, pool, interrupted)
    assert failed.state == "FAILURE"
    stand_in_of(failed.result, "KeyboardInterrupt")


class RaisingHooks(Task):
    """Raises from the hook named in the task's ``broken_hook`` attribute."""

    broken_hook = ""

    def _maybe_raise(self, hook: str) -> None:
        if hook == self.broken_hook:
            raise SystemExit(f"{hook} broke")

    def before_start(self, *args: Any) -> None:
        self._maybe_raise("before_start")

    def on_success(self, *args: Any) -> None:
        self._maybe_raise("on_success")

    def on_failure(self, *args: Any) -> None:
        self._maybe_raise("on_failure")

    def after_return(self, *args: Any) -> None:
        self._maybe_raise("after_return")


@pytest.mark.parametrize("hook", ["before_start", "on_success", "on_failure", "after_return"])
def test_hook_that_raises(app: Celery, pool: str, hook: str) -> None:
    @app.task(base=type("Broken", (RaisingHooks,), {"broken_hook": hook}))
    def hooked() -> str:
        if hook == "on_failure":
            raise ValueError("task failed first")
        return "done"

    failed = run_then_a_good_one(app, pool, hooked)
    assert failed.state == "FAILURE"
    stand_in_of(failed.result, "SystemExit")
    assert str(failed.result) == f"{hook} broke"
    assert f"{hook} broke" in (failed.traceback or "")


@pytest.mark.parametrize("signal_name", ["task_prerun", "task_postrun", "task_success"])
def test_signal_handler_that_exits(app: Celery, pool: str, signal_name: str) -> None:
    @app.task
    def first() -> str:
        return "first"

    def handler(sender: Any = None, **kwargs: Any) -> None:
        if sender is not None and sender.name == first.name:
            raise SystemExit(f"{signal_name} handler broke")

    sig = getattr(signals, signal_name)
    sig.connect(handler)
    try:
        failed = run_then_a_good_one(app, pool, first)
    finally:
        sig.disconnect(handler)
    assert failed.state == "FAILURE"
    stand_in_of(failed.result, "SystemExit")


class SlowSuccess(Task):
    """on_success outlasts any short time limit."""

    def on_success(self, *args: Any) -> None:
        busy_wait(10)


def test_hard_time_limit_inside_on_success(app: Celery, pool: str) -> None:
    @app.task(base=SlowSuccess, time_limit=0.3)
    def quick() -> str:
        return "done"

    limited = run_then_a_good_one(app, pool, quick)
    assert limited.state == "FAILURE"
    assert isinstance(limited.result, TimeLimitExceeded)


@pytest.mark.parametrize("pool", ["threads"])
def test_more_bad_tasks_than_threads(app: Celery, pool: str) -> None:
    @app.task
    def exits() -> None:
        sys.exit(1)

    @app.task(base=SlowSuccess, time_limit=0.2)
    def overruns() -> str:
        return "done"

    @app.task
    def fine() -> str:
        return "ok"

    bad = [exits.delay() if i % 2 else overruns.delay() for i in range(5)]
    good = fine.delay()
    run(app, pool, concurrency=2)
    assert [r.state for r in bad] == ["FAILURE"] * 5
    assert good.get(timeout=1) == "ok"
