"""Bulk sends encoded straight to stored parts (``protocol.StoredTemplate``,
``Broker.publish_stored``): the same protocol v2 messages as cloned envelopes, in call order,
and publish hooks still see every message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac._utils.stored import envelope_parts
from celeriac.protocol import (
    StoredTemplate,
    build_task_message,
    clone_task_message,
    decode_task_message,
)
from celeriac.worker import Worker
from tests.support.services import broker_url


def _template(**options: Any) -> Any:
    fields: dict[str, Any] = {"task_id": "t-0", "name": "bulk.add", "args": (1, 2)}
    fields.update(options)
    return build_task_message(**fields)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"root_id": "root-1", "parent_id": "parent-1"},
        {"priority": 7, "ignore_result": True, "time_limit": 5.0, "soft_time_limit": 4.0},
        {"expires": "2030-01-01T00:00:00+00:00", "group_id": "g", "group_index": 3},
        {"serializer": "msgpack", "reply_to": "caller-queue", "shadow": "other.name"},
    ],
)
def test_stored_parts_are_the_cloned_message_parts(options: dict[str, Any]) -> None:
    template = _template(**options)
    stored = StoredTemplate.of(template)
    assert stored is not None
    for task_id, args, kwargs in [("a-1", [3, 4], None), ("b-2", ("x", "\u00e9\"\n"),
                                                          {"k": [1, {"z": None}]})]:
        parts = stored.parts(task_id, args, kwargs)
        assert parts == envelope_parts(clone_task_message(template, task_id, args, kwargs))
    assert stored.priority == options.get("priority", 0)


@pytest.mark.parametrize(
    "options",
    [
        {"eta": "2030-01-01T00:00:00+00:00"},
        {"extra_headers": {"custom": 1}},
    ],
)
def test_templates_that_cannot_be_cut_are_refused(options: dict[str, Any]) -> None:
    assert StoredTemplate.of(_template(**options)) is None


@pytest.fixture(params=["sqlite", "redis"])
def stored_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    with broker_url(request.param, tmp_path) as url:
        application = Celery("bulk", broker=url, backend=url)
        assert application.broker.capabilities.stored_publish
        yield application
        application.close()


def _drain(app: Celery, queue: str) -> list[Any]:
    deliveries: list[Any] = []
    while batch := app.broker.consume([queue], 500, 0.2):
        deliveries.extend(batch)
        app.broker.ack(batch)
    return deliveries


def test_delay_many_stores_valid_messages_in_order(stored_app: Celery) -> None:
    @stored_app.task(name="bulk.add", queue="bulkq", priority=3)
    def add(x: int, y: int) -> int:
        return x + y

    results = add.delay_many([(i, i + 1) for i in range(1500)])  # more than one chunk
    deliveries = _drain(stored_app, "bulkq")
    assert [d.task_id for d in deliveries] == [r.id for r in results]
    first = deliveries[0].envelope.headers
    for i, delivery in enumerate(deliveries):
        message = decode_task_message(delivery.envelope, None)
        assert (message.name, message.args, message.kwargs) == ("bulk.add", [i, i + 1], {})
        assert message.root_id == message.id == message.correlation_id == results[i].id
        assert message.priority == 3
        assert message.argsrepr == repr([i, i + 1])
        headers = delivery.envelope.headers
        assert {k for k in headers if headers[k] != first[k]} <= {"id", "root_id", "argsrepr"}
        assert list(headers) == list(first)


def test_send_many_keeps_call_order_across_templates(stored_app: Celery) -> None:
    @stored_app.task(name="bulk.echo")
    def echo(x: int) -> int:
        return x

    loud: dict[str, Any] = {"priority": 0}
    quiet: dict[str, Any] = {"ignore_result": False}
    calls: list[tuple[str, Any, Any, Any]] = []
    for i in range(30):
        options = loud if (i // 7) % 2 else quiet
        calls.append(("bulk.echo", (i,), None, options))
    calls.insert(10, ("bulk.echo", None, {"x": -1}, {"task_id": "fixed-id"}))
    results = stored_app.send_many(calls, chunk_size=4)
    assert results[10].id == "fixed-id"
    deliveries = _drain(stored_app, "celery")
    assert [d.task_id for d in deliveries] == [r.id for r in results]
    expected = [[i] for i in range(30)]
    expected.insert(10, [])
    assert [decode_task_message(d.envelope, None).args for d in deliveries] == expected


def test_publish_hooks_see_every_bulk_message(stored_app: Celery) -> None:
    @stored_app.task(name="bulk.add")
    def add(x: int, y: int) -> int:
        return x + y

    seen: list[tuple[str, Any]] = []

    def receiver(sender: str, headers: Any, **_: Any) -> None:
        seen.append((headers["id"], headers["argsrepr"]))

    signals.before_task_publish.connect(receiver)
    try:
        results = add.delay_many([(i, i) for i in range(50)])
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert seen == [(r.id, repr([i, i])) for i, r in enumerate(results)]
    worker = Worker(stored_app, burst=True, pool="solo", install_signal_handlers=False)
    worker.start()
    assert [r.get(timeout=5) for r in results[:3]] == [0, 2, 4]


def test_a_failed_bulk_send_leaves_the_connection_in_step(stored_app: Celery) -> None:
    """Batches written before a call that cannot be encoded stay stored, and the next publish
    on the same connection gets its own reply (the unread replies are read first)."""
    from celeriac.exceptions import EncodeError

    @stored_app.task(name="bulk.add")
    def add(x: int, y: int) -> int:
        return x + y

    shared: dict[str, Any] = {}
    calls: list[tuple[str, Any, Any, Any]] = [
        ("bulk.add", (i, i), None, shared) for i in range(2500)
    ]
    calls.append(("bulk.add", (object(), 1), None, shared))
    with pytest.raises(EncodeError):
        stored_app.send_many(calls)
    after = add.delay(5, 5)
    deliveries = _drain(stored_app, "celery")
    ids = [d.task_id for d in deliveries]
    # the first call (the template, sent as an envelope), two whole batches of 1,000 of
    # the calls after it, then the delay(); the last 499 calls were never sent
    assert len(ids) == 1 + 2 * 1000 + 1
    assert ids[-1] == after.id
