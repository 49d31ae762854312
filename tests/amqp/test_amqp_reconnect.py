"""Connection loss under load: RabbitMQ closes every connection of this run's vhost while a
producer and a consumer are busy; both reconnect (the next call after the error), the
consumer's unacked messages come back, and nothing whose publish was confirmed is lost."""

from __future__ import annotations

import threading
import time

from celeriac.exceptions import TransportError
from tests.amqp import support
from tests.amqp.conftest import AmqpFactory
from tests.brokers.conftest import envelope

TOTAL = 1500
BATCH = 50


def test_nothing_confirmed_is_lost_when_connections_drop(make_amqp: AmqpFactory) -> None:
    vhost = support.run_vhost()
    # A confirm stalled by the lost connection (or by a slow disk on a busy machine) is given
    # up after 10 s and the batch published again.
    producer, consumer = make_amqp(confirm_timeout=10), make_amqp()
    queue = support.unique("load")
    producer.publish(queue, envelope("first"))
    confirmed: set[str] = {"first"}
    seen: set[str] = set()
    errors = {"publish": 0, "consume": 0}
    done = threading.Event()

    def produce() -> None:
        next_id = 0
        while next_id < TOTAL:
            batch = [f"m{i}" for i in range(next_id, min(next_id + BATCH, TOTAL))]
            try:
                producer.publish_many([(queue, envelope(i)) for i in batch])
            except TransportError:
                errors["publish"] += 1  # not confirmed: publish again (at-least-once)
                time.sleep(0.05)
                continue
            confirmed.update(batch)
            next_id += BATCH
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    closed = 0
    deadline = time.monotonic() + 100
    try:
        while time.monotonic() < deadline:
            if closed < 2 and len(seen) > (closed + 1) * TOTAL // 3:
                closed += 1
                assert support.close_connections(vhost) >= 1
            try:
                got = consumer.consume([queue], 64, 0.5)
                seen.update(d.task_id for d in got)
                consumer.ack(got)
            except TransportError:
                errors["consume"] += 1
                time.sleep(0.05)
                continue
            if done.is_set() and confirmed <= seen:
                break
    finally:
        thread.join(timeout=60)
    assert closed == 2
    assert errors["consume"] >= 1  # the consumer did see the connection go
    assert confirmed <= seen, f"lost {len(confirmed - seen)} confirmed message(s)"
    assert len(confirmed) == TOTAL + 1
