"""Bad input never kills a worker and never loses another message."""

from __future__ import annotations

import pickle
import uuid

import pytest

from celeriac import Celery, states
from celeriac.exceptions import NotRegistered
from celeriac.message import Envelope
from celeriac.protocol import build_task_message
from tests.conftest import RunWorker


def _raw(task: str | None, body: bytes, content_type: str = "application/json") -> Envelope:
    task_id = str(uuid.uuid4())
    headers = {"id": task_id, "task": task} if task else {"id": task_id}
    return Envelope(
        body=body,
        headers=headers,
        properties={"correlation_id": task_id},
        content_type=content_type,
    )


def test_each_kind_of_bad_input_then_a_good_task(
    app: Celery, run_worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    broker = app.broker
    bad = {
        "not json": _raw(add.name, b"\x00\xffnot json"),
        "wrong shape": _raw(add.name, b'{"args": [1, 2]}'),
        "args not a list": _raw(add.name, b"[5, {}, {}]"),
        "no task header": _raw(None, b"[[1, 2], {}, {}]"),
        "pickle refused": _raw(
            add.name, pickle.dumps([[1, 2], {}, {}]), "application/x-python-serialize"
        ),
    }
    for envelope in bad.values():
        broker.publish("celery", envelope)
    unknown = build_task_message(task_id=str(uuid.uuid4()), name="no.such.task", args=[1])
    broker.publish("celery", unknown)
    wrong_args = build_task_message(task_id=str(uuid.uuid4()), name=add.name, args=[1, 2, 3])
    broker.publish("celery", wrong_args)
    good = add.delay(2, 2)

    run_worker()

    assert good.get(timeout=1) == 4
    # every malformed message is recorded as rejected, with a reason, and stored as FAILURE
    reasons = [reason for _, reason in app.coordination.rejected()]
    assert len(reasons) == 6
    assert any("NotRegistered" in r for r in reasons)
    assert any("ContentDisallowed" in r for r in reasons)
    for envelope in bad.values():
        assert app.AsyncResult(envelope.task_id).state == states.FAILURE
    unknown_result = app.AsyncResult(unknown.task_id)
    assert unknown_result.state == states.FAILURE
    with pytest.raises(NotRegistered):
        unknown_result.get(timeout=1)
    # wrong arguments run the task, which fails with TypeError like Celery
    with pytest.raises(TypeError):
        app.AsyncResult(wrong_args.task_id).get(timeout=1)
    assert "Received unregistered task of type 'no.such.task'" in caplog.text
    assert broker.queue_size("celery") == 0


def test_unserializable_result_becomes_failure(app: Celery, run_worker: RunWorker) -> None:
    @app.task
    def weird() -> object:
        return object()

    @app.task
    def fine() -> int:
        return 1

    bad, ok = weird.delay(), fine.delay()
    run_worker()
    assert bad.state == states.FAILURE
    assert "not json-serializable" in str(bad.result)
    assert ok.get(timeout=1) == 1


def test_exception_that_cannot_be_pickled_or_encoded(app: Celery, run_worker: RunWorker) -> None:
    class Odd(Exception):
        def __init__(self, thing: object) -> None:
            super().__init__(thing)

    @app.task
    def odd() -> None:
        raise Odd(object())

    result = odd.delay()
    run_worker()
    assert result.state == states.FAILURE
    assert "object object" in str(result.result)
