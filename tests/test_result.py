"""AsyncResult and friends against a real worker on the memory transport."""

from __future__ import annotations

import time

import pytest

from celeriac import Celery, Task, states
from celeriac.exceptions import TimeoutError as CeleriacTimeout
from celeriac.result import AsyncResult, GroupResult, ResultSet, allow_join_result
from tests.conftest import RunWorker


class CustomError(Exception):
    pass


def test_state_result_and_traceback(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def fail() -> None:
        raise CustomError("custom", 42)

    result = fail.delay()
    assert result.status == states.PENDING and not result.ready()
    run_worker()
    assert result.state == states.FAILURE and result.failed() and result.ready()
    assert isinstance(result.result, CustomError)
    assert result.info.args == ("custom", 42)
    assert "CustomError" in (result.traceback or "")
    with pytest.raises(CustomError):
        result.get(timeout=1)
    assert isinstance(result.get(propagate=False), CustomError)


def test_get_timeout_raises_celeriac_timeout(app: Celery) -> None:
    @app.task
    def never() -> None:
        pass

    result = never.delay()
    started = time.monotonic()
    with pytest.raises(CeleriacTimeout, match="timed out"):
        result.get(timeout=0.2)
    assert time.monotonic() - started >= 0.2
    with pytest.raises(TimeoutError):  # the builtin catches it too
        result.wait(0.05)


def test_forget(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    run_worker()
    assert result.get(timeout=1) == 1
    result.forget()
    assert AsyncResult(result.id, app=app).state == states.PENDING


def test_result_expires(app: Celery, run_worker: RunWorker) -> None:
    app.conf.result_expires = 0.3

    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    run_worker()
    assert AsyncResult(result.id, app=app).state == states.SUCCESS
    time.sleep(0.5)
    assert AsyncResult(result.id, app=app).state == states.PENDING


def test_result_extended(app: Celery, run_worker: RunWorker) -> None:
    app.conf.result_extended = True

    @app.task
    def echo(x: int) -> int:
        return x

    result = echo.delay(5)
    run_worker(hostname="ext@host")
    assert result.get(timeout=1) == 5
    assert (result.name, result.args, result.worker, result.queue) == (
        echo.name,
        [5],
        "ext@host",
        "celery",
    )


def test_get_inside_task_raises_unless_allowed(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def leaf() -> int:
        return 7

    @app.task
    def blocking() -> str:
        try:
            leaf.delay().get(timeout=0.1)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    @app.task
    def allowed(task_id: str) -> int:
        with allow_join_result():
            return AsyncResult(task_id).get(timeout=1)

    done = leaf.delay()
    run_worker()
    refused = blocking.delay()
    joined = allowed.delay(done.id)
    run_worker()
    assert refused.get(timeout=1).startswith("Never call result.get() within a task!")
    assert joined.get(timeout=1) == 7


def test_resultset_and_group_save_restore(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def square(x: int) -> int:
        return x * x

    results = [square.delay(i) for i in range(5)]
    group = GroupResult("g-1", results, app=app)
    assert not group.ready() and group.completed_count() == 0
    run_worker()
    assert group.ready() and group.successful() and not group.failed()
    assert group.completed_count() == 5
    assert group.join(timeout=1) == [0, 1, 4, 9, 16]
    group.save()
    restored = GroupResult.restore("g-1", app=app)
    assert restored is not None and [r.id for r in restored] == [r.id for r in results]
    assert restored.get(timeout=1) == [0, 1, 4, 9, 16]
    assert ResultSet(results).get(timeout=1) == [0, 1, 4, 9, 16]


def test_result_equality_and_repr(app: Celery) -> None:
    a = AsyncResult("abc", app=app)
    assert a == AsyncResult("abc", app=app) == "abc"
    assert repr(a) == "<AsyncResult: abc>" and str(a) == "abc"
    assert len({a, AsyncResult("abc", app=app)}) == 1


def test_bound_task_asyncresult(app: Celery, run_worker: RunWorker) -> None:
    @app.task(bind=True)
    def me(self: Task) -> str:
        return self.AsyncResult(self.request.id).id

    result = me.delay()
    run_worker()
    assert result.get(timeout=1) == result.id
