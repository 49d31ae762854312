"""The middleware contract: which hooks run, in what order, where, and what a raising hook does."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from celeriac import Celery, chain, group, signals, states
from celeriac.effects import Effects
from celeriac.exceptions import ImproperlyConfigured
from celeriac.message import Envelope
from celeriac.middleware import HOOKS, Middleware, MiddlewareStack, build_stack
from tests.conftest import RunWorker


class Recorder(Middleware):
    """Records every hook call as (hook name, detail)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def before_publish(self, app: Any, queue: str, envelope: Envelope) -> None:
        self.calls.append(("before_publish", envelope.task_name))

    def after_publish(self, app: Any, queue: str, envelope: Envelope) -> None:
        self.calls.append(("after_publish", envelope.task_name))

    def worker_boot(self, worker: Any) -> None:
        self.calls.append(("worker_boot", worker.hostname))

    def after_receive(self, executor: Any, job: Any) -> None:
        self.calls.append(("after_receive", job.task_name))

    def after_discard(self, executor: Any, message: Any, why: str) -> None:
        self.calls.append(("after_discard", why))

    def before_process(self, executor: Any, job: Any) -> None:
        self.calls.append(("before_process", job.task_name))

    def before_task(self, task: Any, request: Any, args: Any, kwargs: Any) -> None:
        self.calls.append(("before_task", tuple(args)))

    def on_task_success(self, task: Any, request: Any, retval: Any) -> None:
        self.calls.append(("on_task_success", retval))

    def on_task_retry(self, task: Any, request: Any, reason: Any, einfo: Any) -> None:
        self.calls.append(("on_task_retry", type(reason).__name__))

    def on_task_failure(self, task: Any, request: Any, exc: Any, einfo: Any, args: Any,
                        kwargs: Any) -> None:
        self.calls.append(("on_task_failure", type(exc).__name__))

    def after_task(self, task: Any, request: Any, args: Any, kwargs: Any, state: str,
                   retval: Any) -> None:
        self.calls.append(("after_task", state))

    def conclude(self, task: Any, request: Any, outcome: Any) -> Effects | None:
        self.calls.append(("conclude", outcome.state))
        return None

    def after_process(self, executor: Any, job: Any, outcome: Any) -> None:
        self.calls.append(("after_process", outcome.state))

    def after_settle(self, executor: Any, stored: int, acked: int) -> None:
        self.calls.append(("after_settle", (stored, acked)))

    def worker_shutdown(self, worker: Any) -> None:
        self.calls.append(("worker_shutdown", worker.hostname))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def test_every_hook_of_a_successful_task_in_order(app: Celery, run_worker: RunWorker) -> None:
    recorder = Recorder()
    app.conf.worker_middleware = [recorder]

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    run_worker(hostname="w1@test")
    assert result.get(timeout=1) == 5
    assert recorder.calls == [
        ("before_publish", add.name),
        ("after_publish", add.name),
        ("worker_boot", "w1@test"),
        ("after_receive", add.name),
        ("before_process", add.name),
        ("after_settle", (0, 1)),  # solo acks (early) before it runs the task inline
        ("before_task", (2, 3)),
        ("on_task_success", 5),
        ("after_task", states.SUCCESS),
        ("conclude", states.SUCCESS),
        ("after_process", states.SUCCESS),
        ("after_settle", (1, 0)),
        ("worker_shutdown", "w1@test"),
    ]


def test_failure_and_retry_hooks(app: Celery, run_worker: RunWorker) -> None:
    recorder = Recorder()
    app.conf.worker_middleware = [recorder]

    @app.task(bind=True, max_retries=1)
    def flaky(self: Any) -> None:
        if self.request.retries == 0:
            raise self.retry(exc=KeyError("again"), countdown=0)
        raise ValueError("broken")

    result = flaky.delay()
    run_worker()
    with pytest.raises(ValueError):
        result.get(timeout=1)
    names = recorder.names()
    assert ("on_task_retry", "KeyError") in recorder.calls
    assert ("on_task_failure", "ValueError") in recorder.calls
    assert names.count("before_task") == 2
    assert [c for c in recorder.calls if c[0] == "after_task"] == [
        ("after_task", states.RETRY), ("after_task", states.FAILURE)]


def test_discarded_message_reaches_after_discard(app: Celery, run_worker: RunWorker) -> None:
    recorder = Recorder()
    app.conf.worker_middleware = [recorder]

    @app.task
    def never() -> None:
        raise AssertionError("must not run")

    result = never.apply_async(expires=-1)
    run_worker()
    assert result.state == states.REVOKED
    assert ("after_discard", "expired") in recorder.calls
    assert "before_task" not in recorder.names()


def test_user_middleware_comes_after_the_builtins() -> None:
    stack = build_stack([Recorder])
    names = [type(m).__name__ for m in stack]
    assert names == ["SignalsMiddleware", "StartedMiddleware", "ContinuationMiddleware",
                     "EventsMiddleware", "Recorder"]


def test_middleware_by_path_class_or_instance() -> None:
    instance = Recorder()
    stack = build_stack([instance, Recorder, "tests.middleware.test_hooks:Recorder",
                         "tests.middleware.test_hooks.Recorder"])
    users = list(stack)[4:]
    assert users[0] is instance
    assert [type(m) for m in users] == [Recorder] * 4


@pytest.mark.parametrize("bad", [object(), "tests.middleware.test_hooks:Nope", "no_such_mod:X"])
def test_a_bad_entry_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="worker_middleware"):
        build_stack([bad])


def test_stack_keeps_only_overriding_methods() -> None:
    class OnlyBoot(Middleware):
        def worker_boot(self, worker: Any) -> None:
            pass

    stack = MiddlewareStack([OnlyBoot()])
    assert len(stack.worker_boot) == 1
    for hook in HOOKS:
        if hook != "worker_boot":
            assert getattr(stack, hook) == (), hook


def test_stack_follows_configuration_changes(app: Celery) -> None:
    first = app.middleware
    assert app.middleware is first
    app.conf.worker_middleware = [Recorder()]
    assert app.middleware is not first
    assert len(app.middleware) == len(first) + 1


def test_a_raising_worker_hook_is_logged_and_the_task_stands(
    app: Celery, run_worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Middleware):
        def after_process(self, executor: Any, job: Any, outcome: Any) -> None:
            raise RuntimeError("hook bug")

        def before_process(self, executor: Any, job: Any) -> None:
            raise RuntimeError("hook bug too")

    app.conf.worker_middleware = [Broken]

    @app.task
    def ok() -> str:
        return "fine"

    results = [ok.delay() for _ in range(3)]
    with caplog.at_level(logging.ERROR, logger="celeriac.worker"):
        worker = run_worker()
    assert [r.get(timeout=1) for r in results] == ["fine"] * 3
    assert worker.exitcode == 0
    assert sum("Broken.after_process raised" in r.getMessage() for r in caplog.records) == 3
    assert sum("Broken.before_process raised" in r.getMessage() for r in caplog.records) == 3


def test_a_raising_task_hook_fails_the_task(app: Celery, run_worker: RunWorker) -> None:
    class Broken(Middleware):
        def before_task(self, task: Any, request: Any, args: Any, kwargs: Any) -> None:
            raise RuntimeError("before_task bug")

    app.conf.worker_middleware = [Broken]
    ran: list[int] = []

    @app.task
    def body() -> None:
        ran.append(1)

    result = body.delay()
    worker = run_worker()
    with pytest.raises(RuntimeError, match="before_task bug"):
        result.get(timeout=1)
    assert ran == []
    assert worker.exitcode == 0


def test_a_raising_before_publish_stops_the_send(app: Celery) -> None:
    class Veto(Middleware):
        def before_publish(self, app: Any, queue: str, envelope: Envelope) -> None:
            raise PermissionError("not this one")

    app.conf.worker_middleware = [Veto]

    @app.task
    def t() -> None: ...

    with pytest.raises(PermissionError):
        t.delay()
    with pytest.raises(PermissionError):
        group(t.s(), t.s()).delay()
    assert app.broker.queue_size("celery") == 0


def test_workflow_continuation_is_published_by_the_worker_through_the_hooks(
    app: Celery, run_worker: RunWorker
) -> None:
    recorder = Recorder()
    app.conf.worker_middleware = [recorder]

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def double(x: int) -> int:
        return x * 2

    result = chain(add.s(1, 2), double.s()).delay()
    run_worker()
    assert result.get(timeout=1) == 6
    published = [detail for name, detail in recorder.calls if name == "before_publish"]
    assert published == [add.name, double.name]
    # the continuation is published after the first task's outcome reached the executor
    calls = recorder.calls
    assert calls.index(("after_process", states.SUCCESS)) < calls.index(
        ("before_publish", double.name))


class PidEffects(Middleware):
    """Attaches a record naming the process that ran the task (conclude runs there)."""

    def conclude(self, task: Any, request: Any, outcome: Any) -> Effects | None:
        return Effects(records=[(f"pid-of-{request.id}", states.SUCCESS,
                                 str(os.getpid()).encode())])


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork"])
def test_conclude_runs_where_the_task_runs_and_its_effects_are_stored(
    app: Celery, run_worker: RunWorker, pool: str, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app.conf.broker_url = url
    app.conf.result_backend = url
    app.conf.worker_middleware = [PidEffects]

    @app.task
    def noop() -> None: ...

    result = noop.delay()
    run_worker(pool=pool, concurrency=1)
    assert result.get(timeout=5) is None
    stored = app.backend.get(f"pid-of-{result.id}")
    assert stored is not None
    assert (int(stored) == os.getpid()) is (pool != "prefork")


def test_task_received_signal_is_sent(app: Celery, run_worker: RunWorker) -> None:
    seen: list[str | None] = []

    def on_received(sender: Any = None, request: Any = None, **kwargs: Any) -> None:
        seen.append(request.id)

    signals.task_received.connect(on_received)
    try:
        @app.task
        def t() -> None: ...

        result = t.delay()
        run_worker()
    finally:
        signals.task_received.disconnect(on_received)
    assert seen == [result.id]


def test_acks_late_message_is_acked_after_its_continuation_is_published(
    app: Celery, run_worker: RunWorker
) -> None:
    recorder = Recorder()
    app.conf.worker_middleware = [recorder]
    app.conf.task_acks_late = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = chain(add.s(1, 2), add.s(3)).delay()
    run_worker()
    assert result.get(timeout=1) == 6
    calls = recorder.calls
    published = calls.index(("after_publish", add.name), 2)  # the worker's, not delay()'s
    first_ack = next(i for i, (name, detail) in enumerate(calls)
                     if name == "after_settle" and detail[1] > 0)
    assert published < first_ack


def test_signal_hooks_run_only_while_someone_listens(app: Celery) -> None:
    def receiver(**kwargs: Any) -> None: ...

    assert app.middleware.before_task == ()
    signals.task_prerun.connect(receiver)
    try:
        assert [h.__self__.__class__.__name__ for h in app.middleware.before_task] == [
            "SignalsMiddleware"]
        assert app.middleware.after_task == ()  # task_postrun still has no receiver
    finally:
        signals.task_prerun.disconnect(receiver)
    assert app.middleware.before_task == ()


def test_user_middleware_instances_survive_a_signal_change(app: Celery) -> None:
    app.conf.worker_middleware = [Recorder]
    mine = list(app.middleware)[-1]

    def receiver(**kwargs: Any) -> None: ...

    signals.task_success.connect(receiver)
    try:
        assert list(app.middleware)[-1] is mine
    finally:
        signals.task_success.disconnect(receiver)


def test_after_lost_sees_a_job_whose_process_died(
    app: Celery, run_worker: RunWorker, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    app.conf.broker_url = url
    app.conf.result_backend = url
    lost: list[tuple[str, str | None]] = []

    class Lost(Middleware):
        def after_lost(self, executor: Any, job: Any, outcome: Any) -> None:
            lost.append((outcome.state, outcome.exc_type))

    app.conf.worker_middleware = [Lost]

    @app.task
    def dies() -> None:
        os._exit(1)

    @app.task
    def lives() -> int:
        return 1

    dead, alive = dies.delay(), lives.delay()
    run_worker(pool="prefork", concurrency=1)
    assert alive.get(timeout=5) == 1
    assert dead.state == states.FAILURE
    assert lost == [(states.FAILURE, "WorkerLostError")]
