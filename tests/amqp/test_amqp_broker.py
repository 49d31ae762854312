"""What the RabbitMQ broker guarantees beyond the shared contract: confirms, the qos window,
quorum queues, priorities only where asked, delays held by RabbitMQ (never by a consumer),
dead-lettering, exchanges and routing keys from ``task_queues``, native redelivery."""

from __future__ import annotations

import contextlib
import threading
import time

import amqp

from celeriac._amqp.connection import open_connection, parse_url
from celeriac._amqp.topology import DELAY_PREFIX
from celeriac.brokers.amqp import REJECTED_QUEUE_HEADER, REJECTED_REASON_HEADER
from celeriac.exceptions import BrokerConnectionError
from tests.amqp import support
from tests.amqp.conftest import AmqpFactory
from tests.brokers.conftest import envelope

EVENTUALLY_S = 10.0


def ids(deliveries: list) -> list[str]:  # type: ignore[type-arg]
    return [d.task_id for d in deliveries]


def raw_get(url: str, queue: str) -> amqp.Message | None:
    """One message taken from ``queue`` over a connection of its own (acked)."""
    conn = open_connection(parse_url(url))
    try:
        channel = conn.channel()
        message = channel.basic_get(queue, no_ack=True)
        return message
    finally:
        conn.close()


def test_publish_returns_once_the_message_is_in_the_queue(make_amqp: AmqpFactory) -> None:
    sender, other = make_amqp(), make_amqp()
    queue = support.unique("confirm")
    sender.publish_many([(queue, envelope(f"t{i}")) for i in range(300)])
    # Confirmed means enqueued: another connection sees every one at once.
    assert other.queue_size(queue) == 300
    sender.publish(queue, envelope("one"))
    assert other.queue_size(queue) == 301


def test_qos_window_is_what_consume_asks(make_amqp: AmqpFactory) -> None:
    first, second = make_amqp(), make_amqp()
    queue = support.unique("qos")
    first.publish_many([(queue, envelope(f"t{i}")) for i in range(10)])
    held = first.consume([queue], 3, EVENTUALLY_S)
    assert ids(held) == ["t0", "t1", "t2"]
    # Nothing beyond the three sits prefetched with the first consumer: the rest is
    # there for another one.
    assert first.queue_size(queue) == 7
    assert ids(second.consume([queue], 100, EVENTUALLY_S)) == [f"t{i}" for i in range(3, 10)]
    first.ack(held)


def test_no_priorities_unless_asked(make_amqp: AmqpFactory) -> None:
    broker = make_amqp()
    assert broker.capabilities.priorities is False
    queue = support.unique("fifo")
    broker.publish(queue, envelope("low", priority=0))
    broker.publish(queue, envelope("high", priority=9))
    assert ids(broker.consume([queue], 1, EVENTUALLY_S)) == ["low"]
    info = support.queue_info(support.run_vhost(), queue)
    assert "x-max-priority" not in info["arguments"]


def test_max_priority_declares_priority_queues(make_amqp: AmqpFactory) -> None:
    broker = make_amqp(max_priority=5)
    assert broker.capabilities.priorities is True
    queue = support.unique("prio")
    broker.publish(queue, envelope("low", priority=1))
    broker.publish(queue, envelope("high", priority=5))
    assert ids(broker.consume([queue], 2, EVENTUALLY_S)) == ["high", "low"]
    assert "x-max-priority" in support.queue_info(support.run_vhost(), queue)["arguments"]


def test_quorum_queues_when_asked(make_amqp: AmqpFactory) -> None:
    broker = make_amqp(queue_type="quorum")
    queue = support.unique("quorum")
    broker.publish(queue, envelope("t1"))
    assert support.queue_info(support.run_vhost(), queue)["type"] == "quorum"
    [first] = broker.consume([queue], 5, EVENTUALLY_S)
    broker.requeue([first])
    [again] = broker.consume([queue], 5, EVENTUALLY_S)
    assert again.redelivered is True and again.delivery_count == 2
    broker.ack([again])
    assert broker.queue_size(queue) == 0


def test_eta_waits_in_a_delay_queue_not_in_a_consumer(make_amqp: AmqpFactory) -> None:
    broker = make_amqp()
    queue = support.unique("eta")
    sent = envelope("later", eta_in_s=6)
    due = sent.eta_timestamp()
    assert due is not None
    broker.publish(queue, sent)
    broker.publish(queue, envelope("now"))
    assert ids(broker.consume([queue], 10, 0)) == ["now"]
    delay_queues = [n for n in broker.declared_queues if n.startswith(DELAY_PREFIX)]
    assert delay_queues == [f"{DELAY_PREFIX}4096"]
    # Its first 4 s it waits in the delay queue, not in the target queue nor with us.
    assert broker.queue_size(delay_queues[0]) == 1
    assert broker.queue_size(queue) == 0
    got = broker.consume([queue], 10, EVENTUALLY_S)
    assert time.time() >= due
    assert ids(got) == ["later"]
    assert got[0].envelope.headers == sent.headers  # the delay path's headers are gone
    broker.ack(got)


def test_far_eta_is_never_held_unacked(make_amqp: AmqpFactory) -> None:
    """A message that arrives long before its eta (published by a client that knows nothing
    of delay queues) is sent on to a delay queue and acked at once: RabbitMQ's
    consumer_timeout (30 min) can never trip on it."""
    broker = make_amqp()
    queue = support.unique("far")
    far = envelope("far", eta_in_s=40 * 24 * 3600)
    broker.publish(queue, envelope("warm-up"))
    broker.ack(broker.consume([queue], 1, EVENTUALLY_S))
    # Straight into the queue, as Celery itself would publish it.
    from celeriac._amqp.wire import to_message

    conn = open_connection(parse_url(broker.url))
    try:
        conn.channel().basic_publish(to_message(far), "", queue)
    finally:
        conn.close()
    assert broker.consume([queue], 10, 0.5) == []
    vhost = support.run_vhost()
    info = support.queue_info(vhost, queue)
    assert info["messages_ready"] == "0" and info["messages_unacknowledged"] == "0"
    waiting = [support.queue_info(vhost, n) for n in broker.declared_queues
               if n.startswith(DELAY_PREFIX)]
    assert [i["messages_ready"] for i in waiting] == ["1"]


def test_reject_dead_letters_with_the_reason(make_amqp: AmqpFactory) -> None:
    broker = make_amqp()
    logged: list[tuple[str, str, str]] = []
    broker.rejected_sink = lambda items: logged.extend(
        (q, env.task_id, reason) for q, env, reason in items)
    queue = support.unique("poison")
    broker.publish(queue, envelope("bad", body=b"\xff not json"))
    broker.reject(broker.consume([queue], 1, EVENTUALLY_S), "cannot decode")
    assert logged == [(queue, "bad", "cannot decode")]
    assert broker.queue_size(queue) == 0
    dead = raw_get(broker.url, f"{queue}.dead-letter")
    assert dead is not None
    assert dead.body == b"\xff not json"
    headers = dead.properties["application_headers"]
    assert headers[REJECTED_REASON_HEADER] == "cannot decode"
    assert headers[REJECTED_QUEUE_HEADER] == queue
    assert headers["id"] == "bad"


class Exchange:
    """Shaped as kombu's (celeriac reads the attributes)."""

    def __init__(self, name: str, type: str = "direct") -> None:  # kombu names it so
        self.name, self.type = name, type


class Queue:
    def __init__(self, name: str, exchange: Exchange, routing_key: str) -> None:
        self.name, self.exchange, self.routing_key = name, exchange, routing_key
        self.queue_arguments = None


def test_task_queues_with_a_topic_exchange(make_amqp: AmqpFactory) -> None:
    media = Exchange(support.unique("media"), "topic")
    video = Queue(support.unique("video"), media, "media.video")
    everything = Queue(support.unique("all-media"), media, "media.#")
    broker = make_amqp(task_queues=[video, everything])
    broker.consume([everything.name], 1, 0)  # declared and bound before the publish
    broker.publish(video.name, envelope("clip"))
    # Routed as RabbitMQ routes: through the exchange, to every queue bound to the key.
    assert ids(broker.consume([video.name], 10, EVENTUALLY_S)) == ["clip"]
    assert ids(broker.consume([everything.name], 10, EVENTUALLY_S)) == ["clip"]
    delete_exchange(broker.url, media.name)


def test_task_queues_in_celerys_dict_form_and_use_settings(make_amqp: AmqpFactory) -> None:
    broker = make_amqp()
    name, exchange = support.unique("dict"), support.unique("direct-x")
    broker.use_settings({"task_queues": {name: {"exchange": exchange, "routing_key": "k"}}})
    broker.publish(name, envelope("t1"))
    assert ids(broker.consume([name], 10, EVENTUALLY_S)) == ["t1"]
    delete_exchange(broker.url, exchange)


def test_unacked_messages_come_back_flagged_when_the_connection_closes(
    make_amqp: AmqpFactory,
) -> None:
    first, second = make_amqp(), make_amqp()
    queue = support.unique("crash")
    first.publish_many([(queue, envelope(f"t{i}")) for i in range(3)])
    held = first.consume([queue], 3, EVENTUALLY_S)
    assert len(held) == 3
    first.close()  # as a crashed worker's connection
    again = second.consume([queue], 10, EVENTUALLY_S)
    assert ids(again) == ["t0", "t1", "t2"]
    assert all(d.redelivered and d.delivery_count == 2 for d in again)
    first.ack(held)  # a stale ack of the lost channel: dropped, acks nothing of others
    assert second.queue_size(queue) == 0
    second.ack(again)


def delete_exchange(url: str, name: str) -> None:
    conn = open_connection(parse_url(url))
    try:
        conn.channel().exchange_delete(name)
    finally:
        conn.close()


def test_confirms_that_arrive_while_a_batch_is_written_count(make_amqp: AmqpFactory) -> None:
    """py-amqp reads what arrived inside basic_publish: confirms of a batch's first messages
    can be handled before its last one is written. They must count (a regression: the
    publisher waited for them until confirm_timeout)."""
    producer, consumer = make_amqp(confirm_timeout=5), make_amqp()
    queue = support.unique("early-confirms")
    stop = threading.Event()
    errors: list[BaseException] = []
    sent = [0]

    def produce() -> None:
        try:
            while not stop.is_set():
                producer.publish_many([(queue, envelope()) for _ in range(20)])
                sent[0] += 20
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=produce)
    thread.start()
    received = 0
    until = time.monotonic() + 3
    while time.monotonic() < until and not errors:
        got = consumer.consume([queue], 16, 0)
        received += len(got)
        consumer.ack(got)
    stop.set()
    thread.join()
    assert errors == []
    big = [(queue, envelope()) for _ in range(2000)]
    for _ in range(3):
        producer.publish_many(big)
    assert sent[0] > 0 and received > 0


def test_renew_keeps_a_busy_consumers_connection_alive(make_amqp: AmqpFactory) -> None:
    """A worker busy with long tasks claims nothing for a while; its heartbeat thread calls
    renew, which keeps the AMQP heartbeats going, so RabbitMQ does not close the connection
    (which would redeliver the held message to another worker)."""
    holder, other = make_amqp(heartbeat=1), make_amqp()
    queue = support.unique("busy")
    holder.publish(queue, envelope("long"))
    held = holder.consume([queue], 1, EVENTUALLY_S)
    until = time.monotonic() + 6  # several heartbeat timeouts of 1 s
    while time.monotonic() < until:
        holder.renew(held)
        time.sleep(0.3)
    assert other.consume([queue], 1, 0.5) == []  # still held: not redelivered
    holder.ack(held)  # the consumer connection still works: the ack takes
    holder.publish(queue, envelope("next"))  # and so does the publisher, idle for 6 s
    assert ids(holder.consume([queue], 1, EVENTUALLY_S)) == ["next"]


def test_without_renew_a_silent_connection_is_closed_and_its_message_returns(
    make_amqp: AmqpFactory,
) -> None:
    """The other side of the test above: it can fail (RabbitMQ does close silent ones)."""
    holder, other = make_amqp(heartbeat=1), make_amqp()
    queue = support.unique("silent")
    holder.publish(queue, envelope("long"))
    held = holder.consume([queue], 1, EVENTUALLY_S)
    again = other.consume([queue], 1, 30)
    assert ids(again) == ["long"] and again[0].redelivered
    other.ack(again)
    # An ack on the lost connection: refused with the one-line error (or dropped once the
    # loss is known), never acking another message.
    with contextlib.suppress(BrokerConnectionError):
        holder.ack(held)
    assert other.queue_size(queue) == 0


def test_celery_settings_by_their_own_names(make_amqp: AmqpFactory) -> None:
    """``app_settings``: what an app hands over under Celery's names is honoured."""
    broker = make_amqp(task_queue_max_priority=4, task_default_delivery_mode="transient")
    assert broker.capabilities.priorities is True
    queue = support.unique("named")
    broker.publish(queue, envelope("t1"))
    message = raw_get(broker.url, queue)
    assert message is not None and message.properties["delivery_mode"] == 1
    assert "x-max-priority" in support.queue_info(support.run_vhost(), queue)["arguments"]
    persistent, other = make_amqp(), support.unique("persistent")
    persistent.publish(other, envelope("t2"))
    message = raw_get(broker.url, other)
    assert message is not None and message.properties["delivery_mode"] == 2
