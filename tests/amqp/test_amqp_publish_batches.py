"""A batch's frames go out in large sends (celeriac/_amqp/publisher.py): every message arrives
whole and in order, big bodies included, a batch costs far fewer sends than messages, and an
unroutable message in the middle still fails the batch."""

from __future__ import annotations

import time
from typing import Any

import pytest

from celeriac._amqp.publisher import WRITE_BYTES
from celeriac._amqp.wire import to_message
from celeriac.brokers.amqp import AMQPBroker
from celeriac.exceptions import TransportError
from celeriac.message import Envelope
from tests.amqp.conftest import AmqpFactory


def _envelope(i: int, body: bytes) -> Envelope:
    return Envelope(body=body, headers={"id": f"t{i}", "task": "t"},
                    properties={"correlation_id": f"t{i}"})


def _drain(broker: AMQPBroker, queue: str, count: int) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + 20
    while len(got) < count and time.monotonic() < deadline:
        batch = broker.consume([queue], 500, 1.0)
        broker.ack(batch)
        got += batch
    return got


class CountingWrites:
    """Wraps a transport's ``write`` and counts the calls."""

    def __init__(self, transport: Any) -> None:
        self.calls = 0
        self.bytes = 0
        self._write = transport.write

    def __call__(self, data: Any) -> None:
        self.calls += 1
        self.bytes += len(data)
        self._write(data)


def test_a_batch_arrives_whole_and_in_order_in_few_sends(make_amqp: AmqpFactory) -> None:
    broker: AMQPBroker = make_amqp()
    queue = "batches-order"
    broker.publish(queue, _envelope(-1, b"warm"))  # connects and declares
    publisher = broker._publisher
    counting = CountingWrites(publisher._conn.transport)
    publisher._conn.transport.write = counting
    bodies = [b"%d:" % i + b"x" * (i % 700) for i in range(3000)]
    bodies[1500] = b"B" * 1_000_000  # larger than a frame: the writer splits it
    broker.publish_many((queue, _envelope(i, body)) for i, body in enumerate(bodies))
    # one send per WRITE_BYTES gathered, not one per message
    assert counting.calls <= counting.bytes // WRITE_BYTES + 2, counting.calls
    assert counting.calls < 100
    got = _drain(broker, queue, 3001)
    assert [d.envelope.body for d in got] == [b"warm", *bodies]
    assert [d.envelope.task_id for d in got[1:]] == [f"t{i}" for i in range(3000)]


def test_an_unroutable_message_in_a_batch_fails_it(make_amqp: AmqpFactory) -> None:
    broker: AMQPBroker = make_amqp()
    queue = "batches-routed"
    broker.publish(queue, _envelope(0, b"first"))
    publisher = broker._publisher
    outgoing = [("", queue, to_message(_envelope(i, b"ok")), True) for i in range(200)]
    outgoing.insert(100, ("", "batches-no-such-queue", to_message(_envelope(9, b"lost")), True))
    with pytest.raises(TransportError, match=r"did not take 1 of 201.*unroutable"):
        publisher.send(outgoing)
    got = _drain(broker, queue, 201)
    assert [d.envelope.body for d in got] == [b"first"] + [b"ok"] * 200
