"""SendOptions: celeriac's own send flags travel beside Celery's options, never in them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from celeriac import Celery
from celeriac.result import AsyncResult, EagerResult
from celeriac.send_options import DEFAULT_SEND, FROM_TASK, RETRY, SendOptions


def _headers(prepared: Any) -> dict[str, Any]:
    assert not isinstance(prepared, AsyncResult), prepared
    _queue, envelope = prepared
    return dict(envelope.headers)


def test_send_options_are_frozen_constants() -> None:
    assert SendOptions() == DEFAULT_SEND
    assert (FROM_TASK.allow_eager, FROM_TASK.keep_parent) == (False, False)
    assert (RETRY.allow_eager, RETRY.keep_parent) == (False, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_SEND.keep_parent = True  # type: ignore[misc]


def test_keep_parent_decides_whether_the_running_task_is_the_parent(app: Celery) -> None:
    @app.task
    def outer() -> list[Any]:
        child = _headers(app.prepare_message("x.child", (), {}))
        again = _headers(app.prepare_message("x.child", (), {}, send_options=RETRY))
        return [child["parent_id"], child["root_id"], again["parent_id"], again["root_id"]]

    parent, root, kept_parent, kept_root = outer.apply(task_id="outer-id").get()
    assert (parent, root) == ("outer-id", "outer-id")
    assert kept_parent is None and kept_root != "outer-id"  # a root of its own


def test_allow_eager_decides_whether_always_eager_runs_here(app: Celery) -> None:
    app.conf.task_always_eager = True

    @app.task(name="x.double")
    def double(x: int) -> int:
        return 2 * x

    ran_here = app.send_task("x.double", (2,))
    assert isinstance(ran_here, EagerResult)
    assert ran_here.get() == 4
    published = app.send_task("x.double", (2,), send_options=FROM_TASK)
    assert not isinstance(published, EagerResult)
    assert app.broker.queue_size("celery") == 1


def test_task_sends_with_module_constants(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    """The publish path allocates no SendOptions: apply_async and retry pass the constants."""
    seen: list[tuple[SendOptions, dict[str, Any]]] = []

    def send_task(name: str, *args: Any, send_options: SendOptions, **options: Any) -> Any:
        seen.append((send_options, options))
        return AsyncResult("id", app=app)

    monkeypatch.setattr(app, "send_task", send_task)

    @app.task
    def noop() -> None:
        return None

    noop.delay()
    noop.push_request(id="running", called_directly=False, is_eager=False, retries=0)
    try:
        with pytest.raises(Exception) as raised:
            noop.retry(countdown=0)
    finally:
        noop.pop_request()
    assert type(raised.value).__name__ == "Retry"
    assert [s for s, _ in seen] == [FROM_TASK, RETRY]
    assert seen[0][0] is FROM_TASK and seen[1][0] is RETRY
    assert not any(key.startswith("_") for _, options in seen for key in options)
