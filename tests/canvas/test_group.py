"""Groups: batched sending, GroupResult, partial args, failures, revokes, eager mode."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pytest

from celeriac import Celery, group
from celeriac.brokers import Broker
from celeriac.message import Envelope
from celeriac.protocol import decode_task_message
from celeriac.result import GroupResult
from tests.canvas.conftest import Drain
from tests.canvas.tasks import ExpectedError, Tasks


class CountingBroker:
    """Stands in for the app's broker, recording the size of every ``publish_many``."""

    def __init__(self, inner: Broker) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.single_publishes = 0

    def publish_many(self, items: Iterable[tuple[str, Envelope]]) -> None:
        batch = list(items)
        self.batches.append(len(batch))
        self.inner.publish_many(batch)

    def publish(self, queue: str, envelope: Envelope) -> None:
        self.single_publishes += 1
        self.inner.publish(queue, envelope)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def count_publishes(app: Celery) -> CountingBroker:
    counting = CountingBroker(app.broker)
    app._broker = counting  # type: ignore[assignment]
    return counting


def test_group_results_in_order(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    counting = count_publishes(canvas_app)
    result = group(tasks.mul.s(i, i) for i in range(10))()
    assert isinstance(result, GroupResult) and len(result) == 10
    assert counting.batches == [10] and counting.single_publishes == 0
    assert not result.ready() and result.completed_count() == 0
    drain()
    assert result.get(timeout=5) == [i * i for i in range(10)]
    assert result.ready() and result.successful() and not result.failed()
    assert result.completed_count() == 10
    assert result.join(timeout=5) == [i * i for i in range(10)]


def test_members_carry_group_id_and_index(canvas_app: Celery, tasks: Tasks) -> None:
    result = group(tasks.add.s(i, i) for i in range(3)).apply_async()
    deliveries = canvas_app.broker.consume(["celery"], 10, 0.5)
    messages = [decode_task_message(d.envelope, canvas_app.accept_content) for d in deliveries]
    assert sorted((m.headers["group"], m.headers["group_index"]) for m in messages) == [
        (result.id, 0),
        (result.id, 1),
        (result.id, 2),
    ]
    assert [m.id for m in sorted(messages, key=lambda m: m.headers["group_index"])] == [
        r.id for r in result.results
    ]
    canvas_app.broker.requeue(deliveries)


def test_partial_args_go_to_every_member(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = group(tasks.add.s(1), tasks.add.s(2), tasks.add.si(0, 0))(10)
    drain()
    assert result.get(timeout=5) == [11, 12, 0]


def test_nested_groups_are_unrolled(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = group(group(tasks.add.s(1, 1), tasks.add.s(2, 2)), tasks.add.s(3, 3)).delay()
    drain()
    assert result.get(timeout=5) == [2, 4, 6]


def test_group_with_a_failure(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = group(tasks.add.s(1, 1), tasks.fail.s(), tasks.add.s(2, 2)).delay()
    drain()
    assert result.ready() and result.failed() and not result.successful()
    assert result.completed_count() == 2
    with pytest.raises(ExpectedError):
        result.get(timeout=5)
    values = result.join(timeout=5, propagate=False)
    assert values[0] == 2 and isinstance(values[1], ExpectedError) and values[2] == 4


def test_group_link_error_on_every_member(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    workflow = group(tasks.fail.s(1), tasks.add.s(1, 1), tasks.fail.s(2))
    workflow.link_error(tasks.on_error_id.s())
    result = workflow.delay()
    drain()
    assert sorted(v for _, v in tasks.calls) == sorted([result.results[0].id, result.results[2].id])


def test_revoke_group(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = group(tasks.add.s(i, i) for i in range(3)).delay()
    result.revoke()
    drain()
    assert result.ready() and not result.successful()
    assert [r.state for r in result.results] == ["REVOKED"] * 3


def test_save_and_restore(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = group(tasks.add.s(i, i) for i in range(4)).delay()
    result.save()
    restored = GroupResult.restore(result.id, app=canvas_app)
    assert restored is not None and restored == result
    drain()
    assert restored.get(timeout=5) == [0, 2, 4, 6]


def test_skew_spreads_countdowns(memory_tasks: Tasks) -> None:
    g = group(memory_tasks.add.s(i, i) for i in range(4)).skew(start=1, stop=3)
    assert [t.options["countdown"] for t in g.tasks] == [1, 2, 3, 3]


def test_eager_group(memory_tasks: Tasks) -> None:
    memory_tasks.app.conf.task_always_eager = True
    result = group(memory_tasks.mul.s(i, i) for i in range(10))()
    assert result.get() == [i * i for i in range(10)]
    assert result.successful() and result.completed_count() == 10
    assert memory_tasks.app.broker.queue_size("celery") == 0


def test_group_of_100k_is_sent_in_large_batches(memory_tasks: Tasks) -> None:
    app = memory_tasks.app
    counting = count_publishes(app)
    started = time.monotonic()
    result = group(memory_tasks.add.s(i, i) for i in range(100_000)).apply_async()
    elapsed_s = time.monotonic() - started
    assert len(result) == 100_000
    assert sum(counting.batches) == 100_000 and counting.single_publishes == 0
    assert len(counting.batches) <= 100 and min(counting.batches) >= 1000
    assert app.broker.queue_size("celery") == 100_000
    assert elapsed_s < 60
