"""Bulk sending: app.send_many and task.delay_many."""

from __future__ import annotations

import pytest

from celeriac import Celery
from tests.conftest import RunWorker


def test_delay_many_sends_in_order_and_runs(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    results = add.delay_many([(i, i) for i in range(2500)])
    assert len(results) == 2500
    assert app.broker.queue_size("celery") == 2500
    run_worker(prefetch_multiplier=64)
    assert [r.get(timeout=1) for r in results[:5]] == [0, 2, 4, 6, 8]
    assert results[-1].get(timeout=1) == 4998


def test_send_many_by_name_with_options(app: Celery, run_worker: RunWorker) -> None:
    @app.task(name="bulk.echo")
    def echo(x: int) -> int:
        return x

    results = app.send_many(
        [("bulk.echo", (1,), None, {"queue": "a"}), ("bulk.echo", None, {"x": 2}, None)]
    )
    assert app.broker.queue_size("a") == 1
    run_worker(queues=["a", "celery"])
    assert [r.get(timeout=1) for r in results] == [1, 2]


def test_delay_many_checks_arguments_before_sending_anything(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError):
        add.delay_many([(1, 2), (1,)])
    assert app.broker.queue_size("celery") == 0


def test_delay_many_eager(app: Celery) -> None:
    app.conf.task_always_eager = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert [r.get() for r in add.delay_many([(1, 2), (3, 4)])] == [3, 7]


def test_bulk_messages_match_single_sends(app: Celery) -> None:
    from celeriac.protocol import decode_task_message

    @app.task(queue="bulkq", priority=7)
    def add(x: int, y: int) -> int:
        return x + y

    single = add.delay(1, 1)
    many = add.delay_many([(2, 2), (3, 3)])
    deliveries = app.broker.consume(["bulkq"], 10, 1.0)
    assert [d.task_id for d in deliveries] == [single.id] + [r.id for r in many]
    first = deliveries[0].envelope.headers
    for delivery, args in zip(deliveries, ([1, 1], [2, 2], [3, 3]), strict=True):
        message = decode_task_message(delivery.envelope, None)
        assert message.args == args
        headers = delivery.envelope.headers
        assert headers["id"] == headers["root_id"] == delivery.task_id
        assert delivery.envelope.properties["correlation_id"] == delivery.task_id
        assert delivery.envelope.priority == 7
        assert headers["argsrepr"] == repr(tuple(args)) or headers["argsrepr"] == repr(args)
        differing = {k for k in headers if headers[k] != first[k]}
        assert differing <= {"id", "root_id", "argsrepr"}
