"""map, starmap and chunks, and the built-in celery.* tasks behind them."""

from __future__ import annotations

import uuid

from celeriac import Celery, chunks, group, xmap, xstarmap
from celeriac.protocol import decode_task_message
from tests.canvas.conftest import Drain
from tests.canvas.tasks import Tasks


def test_builtin_tasks_on_every_app(memory_app: Celery) -> None:
    later = Celery("later", broker=f"memory://{uuid.uuid4().hex}")
    for app in (memory_app, later):
        assert {"celery.map", "celery.starmap", "celery.chunks", "celery.accumulate"} <= set(
            app.tasks
        )
        assert "celery.map" not in app.tasks.regular()
    later.close()


def test_map(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    sig = tasks.xsum.map([list(range(10)), list(range(100))])
    assert isinstance(sig, xmap) and sig.task == "celery.map"
    result = sig.delay()
    drain()
    assert result.get(timeout=5) == [45, 4950]


def test_starmap_is_one_message(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    sig = tasks.add.starmap([(1, 2), (3, 4)])
    assert isinstance(sig, xstarmap)
    result = sig.apply_async()
    deliveries = canvas_app.broker.consume(["celery"], 10, 0.5)
    assert len(deliveries) == 1
    message = decode_task_message(deliveries[0].envelope, canvas_app.accept_content)
    assert message.name == "celery.starmap"
    assert message.kwargs["task"]["task"] == "t.add" and message.kwargs["it"] == [[1, 2], [3, 4]]
    canvas_app.broker.requeue(deliveries)
    drain()
    assert result.get(timeout=5) == [3, 7]


def test_chunks(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    sig = tasks.add.chunks(zip(range(100), range(100), strict=True), 10)
    assert isinstance(sig, chunks)
    result = sig()
    drain()
    parts = result.get(timeout=5)
    assert len(parts) == 10 and all(len(part) == 10 for part in parts)
    assert parts[0] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert [x for part in parts for x in part] == [2 * i for i in range(100)]


def test_chunks_group_and_skew(canvas_app: Celery, tasks: Tasks, drain: Drain) -> None:
    as_group = tasks.add.chunks(zip(range(10), range(10), strict=True), 3).group()
    assert isinstance(as_group, group) and len(as_group) == 4
    assert all(t.task == "celery.starmap" for t in as_group.tasks)
    result = as_group.skew(start=0, step=0)()
    drain()
    assert result.get(timeout=5) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]


def test_chunks_task_runs_a_celery_sent_message(
    canvas_app: Celery, tasks: Tasks, drain: Drain
) -> None:
    calls = {"task": dict(tasks.add.s()), "it": [[1, 1], [2, 2], [3, 3]], "n": 2}
    result = canvas_app.send_task("celery.chunks", kwargs=calls)
    drain()
    assert result.get(timeout=5) == [[2, 4], [6]]


def test_eager_map_and_chunks(memory_tasks: Tasks) -> None:
    t = memory_tasks
    t.app.conf.task_always_eager = True
    assert ~t.xsum.map([[1, 2], [3]]) == [3, 3]
    assert ~t.add.starmap(zip(range(3), range(3), strict=True)) == [0, 2, 4]
    assert t.add.chunks(zip(range(4), range(4), strict=True), 2)().get() == [[0, 2], [4, 6]]
    assert t.add.starmap([(1, 1)]).apply().get() == [2]
