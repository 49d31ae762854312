"""Chords: the counter, the body running exactly once, failures, revokes, size, eager mode."""

from __future__ import annotations

import time
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group
from celeriac.exceptions import ChordError
from celeriac.protocol import decode_task_message
from tests.canvas.conftest import Drain
from tests.canvas.tasks import Tasks


def test_chord(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = chord(header=[tasks.add.s(1, 2), tasks.mul.s(3, 4)], body=tasks.xsum.s())()
    drain()
    assert result.get(timeout=5) == 15
    assert result.parent.get(timeout=5) == [3, 12]


def test_chord_called_with_body(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    header = group(tasks.add.s(i, i) for i in range(10))
    result = chord(header)(tasks.xsum.s())
    piped = (group(tasks.add.s(i, i) for i in range(10)) | tasks.xsum.s()).delay()
    drain()
    assert result.get(timeout=5) == 90 and piped.get(timeout=5) == 90


def test_members_carry_body_and_size(canvas_app: Celery, tasks: Tasks) -> None:
    result = chord([tasks.add.s(1, 2), tasks.mul.s(3, 4)], tasks.xsum.s()).apply_async()
    deliveries = canvas_app.broker.consume(["celery"], 10, 0.5)
    assert len(deliveries) == 2
    for delivery in deliveries:
        message = decode_task_message(delivery.envelope, canvas_app.accept_content)
        body = message.embed["chord"]
        assert body["task"] == "t.xsum" and body["chord_size"] == 2
        assert body["options"]["task_id"] == result.id
        assert message.headers["group"] == result.parent.id
    canvas_app.broker.requeue(deliveries)


def test_body_runs_exactly_once(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = chord((tasks.add.s(i, 1) for i in range(20)), tasks.record.s())()
    drain()
    assert result.get(timeout=5) == list(range(1, 21))
    assert tasks.calls == [("record", list(range(1, 21)))]


def test_body_runs_once_with_threads(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = chord((tasks.add.s(i, 1) for i in range(200)), tasks.record.s())()
    drain(pool="threads", concurrency=8)
    assert result.get(timeout=10) == list(range(1, 201))
    assert len(tasks.calls) == 1


def test_failing_member_fails_the_chord(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    body = tasks.record.s().on_error(tasks.on_error.s())
    result = chord([tasks.add.s(1, 1), tasks.fail.s(7), tasks.add.s(2, 2)], body)()
    drain()
    started = time.monotonic()
    with pytest.raises(ChordError) as info:
        result.get(timeout=10)
    assert time.monotonic() - started < 5
    failed_id = result.parent.results[1].id
    assert str(info.value) == f"Dependency {failed_id} raised ExpectedError('failed with [7]')"
    assert result.state == "FAILURE"
    assert [name for name, _ in tasks.calls] == ["on_error"]  # the body never ran
    assert tasks.calls[0][1][:2] == (result.id, "ChordError")


def test_revoked_member_fails_the_chord(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.record.s())()
    result.parent.results[0].revoke()
    drain()
    with pytest.raises(ChordError, match="raised TaskRevokedError"):
        result.get(timeout=5)
    assert tasks.calls == []


def test_retried_member_counts_once(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    @canvas_app.task(name="t.flaky", bind=True)
    def flaky(self: Any, x: int) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return x

    result = chord([flaky.s(1), tasks.add.s(1, 1), flaky.s(3)], tasks.record.s())()
    drain()
    assert result.get(timeout=5) == [1, 2, 3]
    assert len(tasks.calls) == 1


def test_empty_header_runs_the_body_with_an_empty_list(
    canvas_app: Celery, tasks: Tasks, drain: Drain
) -> None:
    result = chord([], tasks.xsum.s())()
    drain()
    assert result.get(timeout=5) == 0


def test_chord_bodies_that_are_chains_and_groups(
    canvas_app: Celery, tasks: Tasks, drain: Drain
) -> None:
    t = tasks
    chained = chord([t.add.s(1, 1), t.add.s(2, 2)], t.xsum.s() | t.mul.s(10))()
    grouped = chord([t.add.s(1, 1), t.add.s(2, 2)], group(t.xsum.s(), t.record.s()))()
    extended = (chord([t.add.s(1, 1)], t.xsum.s()) | t.mul.s(3)).delay()
    drain()
    assert chained.get(timeout=5) == 60
    assert grouped.get(timeout=5) == [6, [2, 4]]
    assert extended.get(timeout=5) == 6


def test_chord_with_partial_args_in_a_chain(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    t = tasks
    result = chain(t.add.s(1, 1), chord([t.add.s(1), t.mul.s(3)], t.xsum.s()), t.add.s(100))()
    drain()
    assert result.get(timeout=5) == 109


@pytest.mark.slow
def test_chord_of_10000(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = chord((tasks.add.s(i, 0) for i in range(10_000)), tasks.xsum.s())()
    assert canvas_app.broker.queue_size("celery") == 10_000
    drain(prefetch_multiplier=256)
    assert result.get(timeout=30) == sum(range(10_000))


def test_eager_chord(memory_tasks: Tasks) -> None:
    t = memory_tasks
    t.app.conf.task_always_eager = True
    assert chord([t.add.s(1, 2), t.mul.s(3, 4)], t.xsum.s())().get() == 15
    assert chord(group(t.add.s(i, i) for i in range(10)))(t.xsum.s()).get() == 90
    failed = chord([t.add.s(1, 1), t.fail.s()], t.record.s().on_error(t.on_error.s()))()
    with pytest.raises(ChordError, match="raised ExpectedError"):
        failed.get()
    assert [name for name, _ in t.calls] == ["on_error"]
