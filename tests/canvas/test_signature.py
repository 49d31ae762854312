"""Signatures: building, the dict wire format, calling, partials, link and link_error."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from celeriac import Celery, Signature, chain, chord, group, maybe_signature, signature
from celeriac.canvas import xmap
from celeriac.exceptions import NotRegistered
from celeriac.result import AsyncResult, EagerResult
from tests.canvas.conftest import Drain
from tests.canvas.tasks import ExpectedError, Tasks

WIRE_KEYS = {"task", "args", "kwargs", "options", "subtask_type", "immutable"}


def test_s_and_si(memory_tasks: Tasks) -> None:
    add = memory_tasks.add
    sig = add.s(2, 2)
    assert isinstance(sig, Signature) and isinstance(sig, dict)
    assert set(sig) == WIRE_KEYS
    assert sig["task"] == sig.task == "t.add"
    assert sig.args == (2, 2) and sig.kwargs == {} and sig.options == {}
    assert sig.subtask_type is None and not sig.immutable
    assert add.si(2, 2).immutable
    assert add.s(2, y=3).kwargs == {"y": 3}
    assert sig.type is add and sig.app is memory_tasks.app


def test_signature_by_name_and_options(memory_tasks: Tasks) -> None:
    app = memory_tasks.app
    sig = signature("t.add", args=(2, 2), countdown=10, app=app)
    assert sig.args == (2, 2) and sig.options == {"countdown": 10}
    assert sig.type is memory_tasks.add
    by_app = app.signature("t.add", args=(1, 2), kwargs={}, options={"queue": "q"})
    assert by_app.options == {"queue": "q"} and by_app.app is app
    by_task = memory_tasks.add.signature((2, 2), countdown=10)
    assert by_task.options == {"countdown": 10}
    assert memory_tasks.add.signature((2,), {"y": 3}, immutable=True).immutable


def test_unknown_task_type_raises_not_registered(memory_app: Celery) -> None:
    with pytest.raises(NotRegistered):
        _ = signature("no.such.task", app=memory_app).type


def test_set_clone_and_partial(memory_tasks: Tasks) -> None:
    add = memory_tasks.add
    sig = add.s(2)
    assert sig.set(countdown=5) is sig and sig.options == {"countdown": 5}
    clone = sig.clone(args=(4,), kwargs={"z": 1}, queue="q")
    # partial args go first, like Celery: add(4, 2)
    assert clone.args == (4, 2) and clone.kwargs == {"z": 1}
    assert clone.options == {"countdown": 5, "queue": "q"}
    assert sig.args == (2,) and sig.options == {"countdown": 5}
    immutable = add.si(1, 1).clone(args=(9,))
    assert immutable.args == (1, 1)
    sig.set(immutable=True)
    assert sig.immutable


def test_calling_a_signature_runs_the_function_here(memory_tasks: Tasks) -> None:
    assert memory_tasks.add.s(2, 2)() == 4
    assert memory_tasks.add.s(2)(5) == 7
    assert memory_tasks.add.si(2, 2)(100) == 4


def test_wire_format_round_trips_through_json(memory_tasks: Tasks) -> None:
    t = memory_tasks
    workflow = chain(t.add.s(1, 1), group(t.mul.s(2), t.mul.s(3)), chord([t.add.s(1)], t.xsum.s()))
    workflow.link_error(t.on_error.s())
    data = json.loads(json.dumps(workflow))
    assert data["subtask_type"] == "chain"
    revived = maybe_signature(data, app=t.app)
    assert isinstance(revived, chain)
    assert [type(s).__name__ for s in revived.tasks] == ["Signature", "group", "chord"]
    assert isinstance(revived.tasks[2].header, group)
    assert revived.tasks[2].body.task == "t.xsum"
    assert json.loads(json.dumps(revived)) == data
    assert revived.tasks[1].tasks[0].app is t.app


def test_maybe_signature(memory_tasks: Tasks) -> None:
    sig = memory_tasks.add.s(1, 2)
    assert maybe_signature(None) is None
    assert maybe_signature(sig) is sig
    assert maybe_signature(dict(sig), app=memory_tasks.app) == sig
    assert maybe_signature(sig, clone=True) is not sig
    assert [s.task for s in maybe_signature([dict(sig), sig])] == ["t.add", "t.add"]
    assert isinstance(signature(dict(xmap(sig, [1]))), xmap)


def test_pickle_deepcopy_and_repr(memory_tasks: Tasks) -> None:
    sig = memory_tasks.add.s(2, 2)
    assert pickle.loads(pickle.dumps(sig)) == sig
    deep = copy.deepcopy(chain(sig, memory_tasks.mul.s(3)))
    assert isinstance(deep, chain) and deep.tasks[0] == sig
    assert repr(sig) == "t.add(2, 2)"
    assert repr(memory_tasks.add.si(1, y=2)) == "%t.add(1, y=2)"
    assert repr(sig | memory_tasks.mul.s(3)) == "t.add(2, 2) | t.mul(3)"


def test_freeze_assigns_the_id_that_is_sent(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    sig = tasks.add.s(2, 2)
    assert sig.id is None
    frozen = sig.freeze()
    assert isinstance(frozen, AsyncResult) and sig.id == frozen.id
    assert sig.freeze().id == frozen.id
    result = sig.apply_async()
    assert result.id == frozen.id
    drain()
    assert frozen.get(timeout=5) == 4


def test_apply_async_delay_and_partials(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    partial = tasks.add.s(2)
    r1 = partial.delay(4)
    r2 = tasks.add.s(2, 2).apply_async(countdown=0)
    r3 = tasks.add.si(2, 2).delay(100)
    r4 = signature("t.add", args=(1,), app=canvas_app).apply_async((10,))
    drain()
    assert [r.get(timeout=5) for r in (r1, r2, r3, r4)] == [6, 4, 4, 11]


def test_apply_runs_eagerly(memory_tasks: Tasks) -> None:
    result = memory_tasks.add.s(2).apply((3,))
    assert isinstance(result, EagerResult) and result.get() == 5


def test_send_by_name_when_not_registered_here(canvas_app: Celery, drain: Drain) -> None:
    result = signature("later.add", args=(1, 2), app=canvas_app).delay()

    @canvas_app.task(name="later.add")
    def add(x: int, y: int) -> int:
        return x + y

    drain()
    assert result.get(timeout=5) == 3


def test_link_applies_callback_with_result(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    cb = tasks.add.s(8)
    returned = (sig := tasks.add.s(2, 2)).link(cb)
    assert returned is cb
    result = sig.delay()
    also = tasks.add.apply_async((1, 1), link=tasks.record.si("done"))
    drain()
    assert result.get(timeout=5) == 4 and also.get(timeout=5) == 2
    assert ("record", "done") in tasks.calls
    assert len(sig.options["link"]) == 1


def test_link_error_new_style_gets_request_exc_traceback(
    canvas_app: Celery, tasks: Tasks, drain: Drain
) -> None:
    result = tasks.fail.s(1).on_error(tasks.on_error.s()).delay()
    drain()
    with pytest.raises(ExpectedError):
        result.get(timeout=5)
    assert tasks.calls == [("on_error", (result.id, "ExpectedError", "failed with [1]"))]


def test_link_error_old_style_gets_task_id(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    sig = tasks.fail.s(1)
    sig.link_error(tasks.on_error_id.s())
    result = sig.delay()
    drain()
    assert tasks.calls == [("on_error_id", result.id)]
    assert result.failed()


def test_link_error_not_called_on_success(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    result = tasks.add.s(1, 1).on_error(tasks.on_error.s()).delay()
    drain()
    assert result.get(timeout=5) == 2 and tasks.calls == []


def test_eager_link_and_link_error(memory_tasks: Tasks) -> None:
    t = memory_tasks
    t.app.conf.task_always_eager = True
    assert t.add.s(1, 1).set(link=t.record.s()).delay().get() == 2
    t.fail.s(2).on_error(t.on_error.s()).delay()
    t.fail.apply_async((3,), link_error=t.on_error_id.s())
    assert t.calls[0] == ("record", 2)
    assert t.calls[1][0] == "on_error" and t.calls[1][1][1:] == ("ExpectedError", "failed with [2]")
    assert t.calls[2][0] == "on_error_id"


def test_invert_sends_and_waits(memory_tasks: Tasks) -> None:
    memory_tasks.app.conf.task_always_eager = True
    assert ~memory_tasks.add.s(1, 2) == 3
