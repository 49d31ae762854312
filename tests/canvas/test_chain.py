"""Chains: the message layout, passing results on, failures, revokes, eager mode."""

from __future__ import annotations

import time
from typing import Any

import pytest

from celeriac import Celery, chain, group
from celeriac.exceptions import TaskRevokedError
from celeriac.protocol import decode_task_message
from tests.canvas.conftest import Drain
from tests.canvas.tasks import ExpectedError, Tasks


def test_chain_passes_results_on(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    mul = tasks.mul
    result = chain(mul.s(2, 2), mul.s(5), mul.s(8))()
    drain()
    assert result.get(timeout=5) == 160
    assert result.parent.get(timeout=5) == 20
    assert result.parent.parent.get(timeout=5) == 4
    assert result.parent.parent.parent is None


def test_pipe_and_delay(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = (tasks.add.s(1, 1) | tasks.mul.s(3)).delay()
    from_list = chain([tasks.add.s(1, 1), tasks.mul.s(3)]).apply_async()
    nested = chain(tasks.add.s(1, 1) | tasks.mul.s(3), tasks.add.s(1) | tasks.mul.s(2)).delay()
    drain()
    assert result.get(timeout=5) == 6
    assert from_list.get(timeout=5) == 6
    assert nested.get(timeout=5) == 14


def test_first_message_carries_the_rest_reversed(canvas_app: Celery, tasks: Tasks) -> None:
    result = chain(tasks.add.s(1, 1), tasks.mul.s(3), tasks.add.s(4)).apply_async()
    deliveries = canvas_app.broker.consume(["celery"], 10, 0.5)
    assert len(deliveries) == 1
    message = decode_task_message(deliveries[0].envelope, canvas_app.accept_content)
    assert message.name == "t.add" and message.args == [1, 1]
    steps = message.embed["chain"]
    assert [(s["task"], s["args"]) for s in steps] == [("t.add", [4]), ("t.mul", [3])]
    # ids are assigned up front: the last step's id is the chain result's id
    assert steps[0]["options"]["task_id"] == result.id
    assert steps[1]["options"]["task_id"] == result.parent.id
    assert message.id == result.parent.parent.id
    assert message.headers["root_id"] == message.id
    canvas_app.broker.requeue(deliveries)


def test_immutable_step_ignores_the_parent(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = (tasks.add.s(1, 1) | tasks.add.si(10, 10) | tasks.mul.s(2)).delay()
    drain()
    assert result.get(timeout=5) == 40


def test_partial_args_and_task_id(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = chain(tasks.add.s(1), tasks.mul.s(10)).apply_async((4,), task_id="last-step")
    drain()
    assert result.id == "last-step"
    assert result.get(timeout=5) == 50


def test_failing_step_stops_the_chain(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    workflow = chain(tasks.add.s(1, 1), tasks.fail.s(), tasks.record.s(), tasks.record.s())
    result = workflow.delay()
    drain()
    started = time.monotonic()
    with pytest.raises(ExpectedError, match=r"failed with \[2\]"):
        result.get(timeout=10)
    assert time.monotonic() - started < 5
    assert result.state == "FAILURE" and result.parent.state == "FAILURE"
    assert result.parent.parent.state == "FAILURE"
    assert result.parent.parent.parent.get(timeout=5) == 2
    assert tasks.calls == []  # the later steps never ran


def test_chain_link_error_is_called_once(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    workflow = tasks.add.s(1, 1) | tasks.fail.s() | tasks.add.s(1)
    workflow.link_error(tasks.on_error.s())
    result = workflow.delay()
    drain()
    with pytest.raises(ExpectedError):
        result.get(timeout=5)
    assert [name for name, _ in tasks.calls] == ["on_error"]
    failed_id = tasks.calls[0][1][0]
    assert failed_id == result.parent.id


def test_chain_link_and_link_error_options(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    ok = (tasks.add.s(1, 1) | tasks.mul.s(2)).apply_async(link=tasks.record.s())
    bad = (tasks.add.s(1, 1) | tasks.fail.s()).apply_async(link_error=tasks.on_error_id.s())
    drain()
    assert ok.get(timeout=5) == 4
    assert ("record", 4) in tasks.calls
    assert ("on_error_id", bad.id) in tasks.calls


def test_revoked_step_stops_the_chain(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = chain(tasks.add.s(1, 1), tasks.mul.s(2), tasks.add.s(3)).delay()
    result.parent.revoke()
    drain()
    with pytest.raises(TaskRevokedError):
        result.get(timeout=5)
    assert result.parent.state == "REVOKED" and result.state == "REVOKED"
    assert result.parent.parent.get(timeout=5) == 2


def test_chain_ending_in_a_group(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = chain(tasks.add.s(1, 1), group(tasks.mul.s(2), tasks.mul.s(3))).delay()
    drain()
    assert result.get(timeout=5) == [4, 6]
    assert result.parent.get(timeout=5) == 2


def test_chain_sent_from_a_task_keeps_parent_and_root(
    canvas_app: Celery, tasks: Tasks, drain: Drain
) -> None:
    seen: list[tuple[Any, Any]] = []

    @canvas_app.task(name="t.ids", bind=True)
    def ids(self: Any, value: Any) -> Any:
        seen.append((self.request.root_id, self.request.parent_id))
        return value

    @canvas_app.task(name="t.starter", bind=True)
    def starter(self: Any) -> str:
        (tasks.add.s(1, 1) | ids.s() | ids.s()).delay()
        return str(self.request.id)

    outer = starter.delay()
    drain()
    assert len(seen) == 2
    assert {root for root, _ in seen} == {outer.id}
    assert seen[1][1] != seen[0][1]


def test_eager_chain(memory_tasks: Tasks) -> None:
    t = memory_tasks
    t.app.conf.task_always_eager = True
    result = chain(t.mul.s(2, 2), t.mul.s(5), t.mul.s(8))()
    assert result.get() == 160 and result.parent.get() == 20
    failed = (t.add.s(1, 1) | t.fail.s() | t.record.s()).delay()
    with pytest.raises(ExpectedError):
        failed.get()
    assert t.calls == []
    assert (t.add.s(1, 1) | group(t.mul.s(2), t.mul.s(3)) | t.xsum.s()).delay().get() == 10


def test_apply_runs_a_chain_here(memory_tasks: Tasks) -> None:
    t = memory_tasks
    assert (t.add.s(1, 1) | t.mul.s(3)).apply().get() == 6
    assert chain(t.add.s(1), t.mul.s(3)).apply((1,)).get() == 6
