"""Messages nobody in celeriac wrote, put straight into RabbitMQ: every one is delivered (so the
executor can reject it with a reason) and none breaks a claim; the broker survives a fork and
many publishing threads."""

from __future__ import annotations

import datetime
import decimal
import os
import threading

import amqp

from celeriac._amqp.connection import open_connection, parse_url
from celeriac._amqp.wire import PACKED_HEADER
from celeriac.coordination import create_store
from tests.amqp import support
from tests.amqp.conftest import AmqpFactory
from tests.brokers.conftest import envelope


def raw_publish(url: str, queue: str, messages: list[amqp.Message]) -> None:
    conn = open_connection(parse_url(url))
    try:
        channel = conn.channel()
        for message in messages:
            channel.basic_publish(message, "", queue)
    finally:
        conn.close()


def test_foreign_messages_are_delivered_whole_and_never_break_a_claim(
    make_amqp: AmqpFactory,
) -> None:
    broker = make_amqp(max_priority=9)
    queue = support.unique("hostile")
    broker.publish(queue, envelope("ours-first"))
    raw_publish(broker.url, queue, [
        amqp.Message(b"\x00\xff\xfe not json"),  # no properties at all
        amqp.Message(b"[]", content_type="application/x-python-serialize",
                     application_headers={"task": "x", "id": "pickled"}),
        amqp.Message(b"{}", application_headers={
            "id": "odd-types", "when": datetime.datetime(2020, 1, 1),
            "amount": decimal.Decimal("1.5"), "raw": b"\x00\x01", "nested": [[{"a": None}]],
        }),
        amqp.Message(b"junk-before-body", application_headers={PACKED_HEADER: 4, "id": "pk"}),
        amqp.Message(b"x" * 10, application_headers={PACKED_HEADER: 10_000, "id": "too-long"}),
        amqp.Message(b"{}", priority=255, application_headers={"id": "loud", "eta": "soon"}),
        amqp.Message(b"{}", application_headers={"id": "far-past", "eta": "1970-01-01T00:00:00"}),
    ])
    broker.publish(queue, envelope("ours-last"))
    got = broker.consume([queue], 20, 5.0)
    assert len(got) == 9
    by_id = {d.task_id: d for d in got}
    assert {"ours-first", "ours-last", "pickled", "odd-types", "pk", "too-long", "loud",
            "far-past"} <= set(by_id)
    assert by_id["pickled"].envelope.content_type == "application/x-python-serialize"
    assert by_id["pickled"].envelope.body == b"[]"  # bytes, never unpickled
    assert by_id["too-long"].envelope.body == b"x" * 10  # a lying marker changes nothing
    assert by_id["loud"].envelope.priority == 255  # the decoder, not the broker, rejects it
    # Rejecting them all works, and the log takes the odd types without raising.
    store = create_store(f"memory://{support.unique('hostile')}")
    broker.rejected_sink = store.record_rejected
    broker.reject(got, "hostile")
    assert len(store.rejected(limit=20)) == 9
    assert broker.queue_size(queue) == 0
    assert broker.queue_size(f"{queue}.dead-letter") == 9
    store.close()


def test_a_forked_child_never_uses_the_parents_connections(make_amqp: AmqpFactory) -> None:
    broker = make_amqp()
    queue = support.unique("fork")
    broker.publish(queue, envelope("before"))
    held = broker.consume([queue], 1, 5.0)
    pid = os.fork()
    if pid == 0:  # the child: its own connections, the parent's untouched
        code = 1
        try:
            broker.publish(queue, envelope("from-child"))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connections still work: its unacked message was not lost with them.
    broker.ack(held)
    broker.publish(queue, envelope("after"))
    assert [d.task_id for d in broker.consume([queue], 10, 5.0)] == ["from-child", "after"]


def test_many_threads_publish_through_one_broker(make_amqp: AmqpFactory) -> None:
    broker = make_amqp()
    queue = support.unique("threads")
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            for i in range(50):
                broker.publish(queue, envelope(f"t{n}-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert broker.queue_size(queue) == 400
