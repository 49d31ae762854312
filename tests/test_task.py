"""Tasks: decorators, options, binding, hooks, retries, eager runs, update_state."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, Task, shared_task, states
from celeriac.exceptions import MaxRetriesExceededError, NotRegistered, Retry
from celeriac.task import exponential_backoff
from tests.conftest import RunWorker


def test_task_decorator_names_and_registers(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="custom.name")
    def other() -> None:
        pass

    assert add.name == "tests.test_task.add"
    assert other.name == "custom.name"
    assert app.tasks["custom.name"] is other
    assert add(2, 3) == 5
    with pytest.raises(NotRegistered):
        app.tasks["missing"]


def test_delay_runs_on_worker_and_result_comes_back(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(10, 6)
    assert result.state == states.PENDING
    run_worker()
    assert result.get(timeout=1) == 16
    assert result.successful() and result.ready() and not result.failed()
    assert result.date_done is not None


def test_wrong_arguments_fail_at_send_time(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="add"):
        add.delay(1)
    with pytest.raises(TypeError):
        add.apply_async((1, 2), {"z": 3})
    assert app.broker.queue_size("celery") == 0


def test_unserializable_argument_names_the_argument(app: Celery) -> None:
    @app.task
    def echo(x: Any, y: Any = None) -> Any:
        return x

    with pytest.raises(TypeError, match="argument 0"):
        echo.delay(object())
    with pytest.raises(TypeError, match="'y'"):
        echo.delay(1, y=object())


def test_bind_gives_request(app: Celery, run_worker: RunWorker) -> None:
    @app.task(bind=True)
    def who(self: Task, x: int) -> dict[str, Any]:
        r = self.request
        return {
            "id": r.id,
            "args": list(r.args),
            "retries": r.retries,
            "hostname": r.hostname,
            "queue": (r.delivery_info or {}).get("routing_key"),
            "root_id": r.root_id,
            "parent_id": r.parent_id,
            "called_directly": r.called_directly,
            "task": r.task,
        }

    result = who.delay(7)
    run_worker(hostname="w1@example")
    info = result.get(timeout=1)
    assert info == {
        "id": result.id,
        "args": [7],
        "retries": 0,
        "hostname": "w1@example",
        "queue": "celery",
        "root_id": result.id,
        "parent_id": None,
        "called_directly": False,
        "task": who.name,
    }
    # a direct call has its own request
    assert who(1)["called_directly"] is True


def test_parent_and_root_ids_follow_subtasks(app: Celery, run_worker: RunWorker) -> None:
    @app.task(bind=True)
    def child(self: Task) -> list[str | None]:
        return [self.request.parent_id, self.request.root_id]

    @app.task(bind=True)
    def parent(self: Task) -> str:
        return child.delay().id

    result = parent.delay()
    run_worker()
    child_result = app.AsyncResult(result.get(timeout=1))
    assert child_result.get(timeout=1) == [result.id, result.id]


def test_custom_base_hooks_are_called(app: Celery, run_worker: RunWorker) -> None:
    calls: list[tuple[Any, ...]] = []

    class Hooked(Task):
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(("success", retval, task_id, tuple(args)))

        def on_failure(
            self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            calls.append(("failure", type(exc).__name__, task_id, "Traceback" in str(einfo)))

        def after_return(
            self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            calls.append(("after", status))

    @app.task(base=Hooked)
    def maybe(fail: bool) -> str:
        if fail:
            raise KeyError("nope")
        return "fine"

    ok = maybe.delay(False)
    bad = maybe.delay(True)
    run_worker()
    assert ok.get(timeout=1) == "fine"
    with pytest.raises(KeyError):
        bad.get(timeout=1)
    assert calls == [
        ("success", "fine", ok.id, (False,)),
        ("after", "SUCCESS"),
        ("failure", "KeyError", bad.id, True),
        ("after", "FAILURE"),
    ]


def test_retry_ends_in_original_exception_after_max_retries(
    app: Celery, run_worker: RunWorker
) -> None:
    seen: list[int] = []
    retried: list[str] = []

    class Base(Task):
        def on_retry(
            self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            retried.append(type(exc).__name__)

    @app.task(bind=True, base=Base, max_retries=4, default_retry_delay=0)
    def flaky(self: Task) -> None:
        seen.append(self.request.retries)
        raise self.retry(exc=ConnectionError("down"))

    result = flaky.delay()
    run_worker()
    assert seen == [0, 1, 2, 3, 4]
    assert retried == ["ConnectionError"] * 4
    assert result.state == states.FAILURE
    assert isinstance(result.result, ConnectionError)
    with pytest.raises(ConnectionError, match="down"):
        result.get(timeout=1)


def test_retry_without_exc_ends_in_max_retries_exceeded(app: Celery, run_worker: RunWorker) -> None:
    @app.task(bind=True, max_retries=1)
    def flaky(self: Task) -> None:
        raise self.retry(countdown=0)

    result = flaky.delay()
    run_worker()
    with pytest.raises(MaxRetriesExceededError):
        result.get(timeout=1)


def test_retry_state_is_visible_between_attempts(app: Celery, run_worker: RunWorker) -> None:
    @app.task(bind=True, max_retries=3)
    def later(self: Task) -> None:
        raise self.retry(exc=ValueError("again"), countdown=60)

    result = later.delay()
    run_worker()
    assert result.state == states.RETRY
    assert isinstance(result.info, ValueError)
    # the retry is stored in the broker with its eta, not held by the worker
    assert app.broker.queue_size("celery") == 1


def test_autoretry_for_with_backoff(app: Celery, run_worker: RunWorker) -> None:
    attempts: list[int] = []

    @app.task(
        bind=True,
        autoretry_for=(OSError,),
        retry_backoff=False,
        retry_kwargs={"max_retries": 2, "countdown": 0},
    )
    def shaky(self: Task) -> str:
        attempts.append(self.request.retries)
        if len(attempts) < 3:
            raise OSError("flap")
        return "ok"

    @app.task(autoretry_for=(OSError,), retry_kwargs={"max_retries": 1, "countdown": 0})
    def broken() -> None:
        raise OSError("always")

    good, bad = shaky.delay(), broken.delay()
    run_worker()
    assert good.get(timeout=1) == "ok"
    assert attempts == [0, 1, 2]
    with pytest.raises(OSError, match="always"):
        bad.get(timeout=1)


def test_exponential_backoff() -> None:
    assert [exponential_backoff(1, n, 600, False) for n in range(5)] == [1, 2, 4, 8, 16]
    assert exponential_backoff(3, 10, 600, False) == 600
    for n in range(6):
        assert 0 <= exponential_backoff(1, n, 600, True) <= 2**n


def test_apply_runs_eagerly_with_eager_retries(app: Celery) -> None:
    runs: list[int] = []

    @app.task(bind=True, max_retries=2)
    def flaky(self: Task) -> str:
        runs.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(exc=ValueError("x"), countdown=100)
        assert self.request.is_eager
        return "done"

    result = flaky.apply()
    assert result.get() == "done"
    assert result.state == states.SUCCESS
    assert runs == [0, 1, 2]


def test_task_always_eager(app: Celery) -> None:
    app.conf.task_always_eager = True

    @app.task
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task
    def boom() -> None:
        raise ValueError("eager boom")

    assert mul.delay(3, 4).get() == 12
    assert app.broker.queue_size("celery") == 0
    failed = boom.delay()
    assert failed.state == states.FAILURE
    with pytest.raises(ValueError):
        failed.get()
    app.conf.task_eager_propagates = True
    with pytest.raises(ValueError):
        boom.delay()


def test_update_state_progress(app: Celery, run_worker: RunWorker) -> None:
    seen: list[Any] = []

    @app.task(bind=True)
    def progress(self: Task) -> int:
        self.update_state(state="PROGRESS", meta={"done": 5, "total": 10})
        seen.append(
            (self.AsyncResult(self.request.id).state, self.AsyncResult(self.request.id).info)
        )
        return 10

    result = progress.delay()
    run_worker()
    assert seen == [("PROGRESS", {"done": 5, "total": 10})]
    assert result.get(timeout=1) == 10


def test_track_started(app: Celery, run_worker: RunWorker) -> None:
    app.conf.task_track_started = True
    seen: list[str] = []

    @app.task(bind=True)
    def look(self: Task) -> None:
        seen.append(self.AsyncResult(self.request.id).state)

    look.delay()
    run_worker()
    assert seen == [states.STARTED]


def test_ignore_result_stores_nothing(app: Celery, run_worker: RunWorker) -> None:
    @app.task(ignore_result=True)
    def quiet() -> int:
        return 1

    @app.task
    def loud() -> int:
        return 2

    a = quiet.delay()
    b = loud.apply_async(ignore_result=True)
    c = loud.delay()
    run_worker()
    assert a.state == states.PENDING
    assert b.state == states.PENDING
    assert c.get(timeout=1) == 2


def test_countdown_and_eta_are_held_by_the_broker(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def noop() -> None:
        pass

    later = noop.apply_async(countdown=30)
    run_worker()
    assert later.state == states.PENDING
    assert app.broker.queue_size("celery") == 1


def test_expired_task_is_revoked(app: Celery, run_worker: RunWorker) -> None:
    from datetime import UTC, datetime, timedelta

    @app.task
    def noop() -> str:
        return "ran"

    old = noop.apply_async(expires=datetime.now(UTC) - timedelta(seconds=1))
    fresh = noop.apply_async(expires=60)
    run_worker()
    assert old.state == states.REVOKED
    assert fresh.get(timeout=1) == "ran"


def test_revoke_before_run(app: Celery, run_worker: RunWorker) -> None:
    ran: list[int] = []

    @app.task
    def work(n: int) -> None:
        ran.append(n)

    first, second = work.delay(1), work.delay(2)
    first.revoke()
    run_worker()
    assert ran == [2]
    assert first.state == states.REVOKED
    from celeriac.exceptions import TaskRevokedError

    with pytest.raises(TaskRevokedError):
        first.get(timeout=1)
    assert second.successful()


def test_queue_option_and_routes(app: Celery, run_worker: RunWorker) -> None:
    app.conf.task_routes = {"tests.test_task.routed": {"queue": "special"}}

    @app.task
    def routed() -> str:
        return "special"

    @app.task(queue="other")
    def pinned() -> str:
        return "other"

    a, b = routed.delay(), pinned.delay()
    run_worker(queues=["celery"])
    assert a.state == b.state == states.PENDING
    run_worker(queues=["special", "other"])
    assert (a.get(timeout=1), b.get(timeout=1)) == ("special", "other")


def test_priority_orders_delivery(app: Celery, run_worker: RunWorker) -> None:
    order: list[int] = []

    @app.task
    def record(n: int) -> None:
        order.append(n)

    for n, priority in [(1, 0), (2, 9), (3, 5)]:
        record.apply_async((n,), priority=priority)
    run_worker(prefetch_multiplier=1)
    assert order == [2, 3, 1]


def test_send_task_by_name(app: Celery, run_worker: RunWorker) -> None:
    @app.task(name="named.echo")
    def echo(x: Any) -> Any:
        return x

    result = app.send_task("named.echo", args=["hi"])
    run_worker()
    assert result.get(timeout=1) == "hi"


def test_custom_call_keeps_request(app: Celery, run_worker: RunWorker) -> None:
    class Wrapping(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return ("wrapped", super().__call__(*args, **kwargs))

    @app.task(bind=True, base=Wrapping)
    def ident(self: Task) -> str | None:
        return self.request.id

    result = ident.delay()
    run_worker()
    assert result.get(timeout=1) == ["wrapped", result.id]


def test_shared_task_binds_to_current_app(memory_url: str, run_worker: RunWorker) -> None:
    @shared_task
    def shared_add(x: int, y: int) -> int:
        return x + y

    app = Celery("shared", broker=memory_url, backend=memory_url)
    assert app.tasks[shared_add.name].name.endswith("shared_add")
    result = shared_add.delay(1, 2)
    run_worker(app)
    assert result.get(timeout=1) == 3


def test_shared_task_without_any_app_fails_clearly() -> None:
    import subprocess
    import sys

    code = (
        "from celeriac import shared_task\n"
        "@shared_task\n"
        "def f(): pass\n"
        "try:\n"
        "    f.delay()\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ImproperlyConfigured No celeriac app has been created")


def test_retry_called_directly_reraises(app: Celery) -> None:
    @app.task(bind=True)
    def direct(self: Task) -> None:
        raise self.retry(exc=ValueError("direct"))

    with pytest.raises(ValueError, match="direct"):
        direct()
    with pytest.raises(Retry):
        app.tasks[direct.name].retry()
