"""The events channel on every broker with broadcast: hostile payloads never break a receiver,
dispatchers batch events into one payload, and several threads may send at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from celeriac import Celery
from celeriac.brokers import create_broker
from celeriac.events import EVENTS_CHANNEL, EventDispatcher, decode_events, encode_events
from celeriac.events import event as event_module
from tests.events.support import collect
from tests.support.services import backend_beside, broker_url


@pytest.fixture(params=["memory", "sqlite", "redis", "amqp", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    kind: str = request.param
    with broker_url(kind, tmp_path) as url:
        application = Celery("wire", broker=url, backend=backend_beside(kind, url, tmp_path),
                             set_as_current=False)
        try:
            yield application
        finally:
            application.close()


def good(uuid: str = "id-1", type_: str = "task-succeeded", **fields: Any) -> dict[str, Any]:
    return {"type": type_, "hostname": "w@h", "timestamp": 1.5, "uuid": uuid, "clock": 3,
            "pid": 1, "utcoffset": 0, **fields}


HOSTILE_PAYLOADS = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[" * 100_000,
    b'{"type": "task-succeeded", "hostname": "w", "timestamp": 1, "uuid": "x"}',
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
    orjson.dumps([{"type": 5, "hostname": "w", "timestamp": 1}]),
    orjson.dumps([{"type": "", "hostname": "w", "timestamp": 1}]),
    orjson.dumps([{"type": "task-started", "hostname": None, "timestamp": 1, "uuid": "x"}]),
    orjson.dumps([{"type": "task-started", "hostname": "w", "timestamp": "soon", "uuid": "x"}]),
    orjson.dumps([{"type": "task-started", "hostname": "w", "timestamp": True, "uuid": "x"}]),
    orjson.dumps([{"type": "task-started", "hostname": "w", "timestamp": 1, "uuid": 7}]),
    orjson.dumps([{"type": "task-started", "hostname": "w", "timestamp": 1}]),
    b'[{"type": "task-started", "hostname": "w", "timestamp": 1e999, "uuid": "x"}]',
    orjson.dumps([[], None, "x", 1.5]),
]


def test_hostile_payloads_are_dropped_and_the_receiver_goes_on(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_module, "MAX_PAYLOAD_BYTES", 4096)
    seen: list[dict[str, Any]] = []
    with app.events.Receiver(app.connection(), handlers={"*": seen.append}) as receiver:
        for payload in [*HOSTILE_PAYLOADS, orjson.dumps([good("huge", note="x" * 5000)])]:
            app.broker.broadcast(EVENTS_CHANNEL, payload)
        app.broker.broadcast(EVENTS_CHANNEL, encode_events([
            {"type": "task-started", "hostname": "w", "timestamp": 1, "uuid": "bad-clock",
             "clock": "nine"},
            good("after"),
        ]))
        events = collect(receiver, lambda got: len(got) >= 2)
    assert [e["uuid"] for e in events] == ["bad-clock", "after"]
    assert events[0]["clock"] == 0  # a clock of the wrong type reads as 0
    assert seen == events
    assert all(isinstance(e["local_received"], float) for e in events)


def test_a_handler_per_type_and_a_catch_all(app: Celery) -> None:
    failed: list[str] = []
    others: list[str] = []
    handlers = {"task-failed": lambda e: failed.append(e["uuid"]),
                "*": lambda e: others.append(e["uuid"])}
    with app.events.Receiver(app.connection(), handlers=handlers) as receiver:
        app.broker.broadcast(EVENTS_CHANNEL, encode_events(
            [good("a", "task-failed"), good("b", "task-succeeded"), good("c", "task-failed")]))
        collect(receiver, lambda got: len(got) >= 3)
    assert (failed, others) == (["a", "c"], ["b"])


def test_a_capture_with_a_limit_keeps_the_rest_for_the_next(app: Celery) -> None:
    with app.events.Receiver(app.connection()) as receiver:
        app.broker.broadcast(EVENTS_CHANNEL, encode_events([good(str(n)) for n in range(5)]))
        first = list(receiver.itercapture(limit=2, timeout=10))
        rest = list(receiver.itercapture(limit=3, timeout=10))
    assert [e["uuid"] for e in first + rest] == ["0", "1", "2", "3", "4"]


def test_a_dispatcher_sends_its_buffer_as_one_payload(app: Celery) -> None:
    dispatcher = app.events.Dispatcher(app.connection(), hostname="w1@test")
    with app.broker.subscribe(EVENTS_CHANNEL) as raw:
        for n in range(3):
            dispatcher.send("task-started", uuid=str(n))
        assert dispatcher.pending == 3
        assert dispatcher.flush() == 3
        assert dispatcher.flush() == 0
        payloads: list[bytes] = []
        while not payloads:
            payloads = raw.get(5.0)
    assert len(payloads) == 1
    events = decode_events(payloads[0])
    assert [e["uuid"] for e in events] == ["0", "1", "2"]
    assert {e["hostname"] for e in events} == {"w1@test"}
    assert [e["clock"] for e in events] == sorted(e["clock"] for e in events)


def test_threads_sending_at_once_lose_and_repeat_nothing(app: Celery) -> None:
    dispatcher = EventDispatcher(app.connection(), "w2@test", buffer_limit=50)
    per_thread, threads = 200, 4
    with app.events.Receiver(app.connection()) as receiver:
        def send(tag: int) -> None:
            for n in range(per_thread):
                dispatcher.send("task-received", uuid=f"{tag}-{n}")
                if n % 37 == 0:
                    dispatcher.flush()

        workers = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        dispatcher.flush()
        events = collect(receiver, lambda got: len(got) >= per_thread * threads)
    uuids = [e["uuid"] for e in events]
    assert len(uuids) == len(set(uuids)) == per_thread * threads


def test_a_disabled_dispatcher_or_another_group_sends_nothing(app: Celery) -> None:
    off = app.events.Dispatcher(app.connection(), hostname="off@test", enabled=False)
    workers_only = app.events.Dispatcher(app.connection(), hostname="w@test", groups=["worker"])
    with app.events.Receiver(app.connection()) as receiver:
        off.send("worker-online", flush=True)
        workers_only.send("task-started", uuid="x", flush=True)
        workers_only.send("worker-heartbeat", flush=True)
        events = collect(receiver, lambda got: len(got) >= 1)
    assert [(e["type"], e["hostname"]) for e in events] == [("worker-heartbeat", "w@test")]


def test_a_field_json_cannot_carry_is_sent_as_its_repr() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "<odd>"

    [event] = decode_events(encode_events([good(extra=Odd(), counts={1: "one"})]))
    assert (event["extra"], event["counts"]) == ("<odd>", {"1": "one"})


def test_a_failed_broadcast_drops_the_batch_and_the_sender_goes_on() -> None:
    # A Redis URL where nothing listens: every broadcast fails at once.
    broker = create_broker("redis://127.0.0.1:1/10")
    dispatcher = EventDispatcher(broker, "w@test")
    dispatcher.send("task-started", uuid="lost")
    dispatcher.send("task-started", uuid="lost-too")
    assert dispatcher.flush() == 0
    assert (dispatcher.sent, dispatcher.dropped, dispatcher.pending) == (0, 2, 0)
    dispatcher.send("task-started", uuid="again", flush=True)
    assert dispatcher.dropped == 3


def test_a_batch_is_due_by_count_or_by_age(app: Celery) -> None:
    dispatcher = app.events.Dispatcher(app.connection(), hostname="w@test")
    assert not dispatcher.due()
    dispatcher.DUE_AT_COUNT = 3
    dispatcher.send("task-started", uuid="1")
    dispatcher.send("task-started", uuid="2")
    assert not dispatcher.due()
    dispatcher.send("task-started", uuid="3")
    assert dispatcher.due()
    dispatcher.flush()
    assert not dispatcher.due()
    dispatcher.DUE_AFTER_S = 0.0
    dispatcher.send("task-started", uuid="4")
    assert dispatcher.due()
