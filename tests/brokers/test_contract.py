"""The broker contract (``celeriac.brokers.base``), run against every broker in BROKER_KINDS.

Timing assertions are only "not before" and "eventually": a slow CI machine may be late, never
early.
"""

from __future__ import annotations

import time

from celeriac.brokers import Broker
from celeriac.coordination import CoordinationStore
from celeriac.message import Delivery
from tests.brokers.conftest import BrokerFactory, EnvelopeFactory

EVENTUALLY_S = 5.0


def task_ids(deliveries: list[Delivery]) -> list[str]:
    return [d.task_id for d in deliveries]


def drain(broker: Broker, queues: list[str], timeout_s: float = 0.2) -> list[Delivery]:
    """Everything deliverable now, one message at a time (so order is the broker's order)."""
    out: list[Delivery] = []
    while batch := broker.consume(queues, 1, timeout_s):
        out.extend(batch)
    return out


def test_roundtrip_preserves_envelope(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    sent = make_envelope(
        "t1",
        body=b"\x00\xffbinary\x80",
        nested={"a": [1, 2.5, None, "x"], "b": {"c": True}},
        retries=3,
    )
    sent = type(sent)(
        body=sent.body,
        headers=sent.headers,
        properties={**sent.properties, "reply_to": "r-1", "delivery_mode": 2},
        content_type="application/x-custom",
        content_encoding="binary",
    )
    broker.publish("q", sent)
    [got] = broker.consume(["q"], 10, EVENTUALLY_S)
    assert got.queue == "q"
    assert got.task_id == "t1"
    assert got.envelope.body == sent.body
    assert dict(got.envelope.headers) == dict(sent.headers)
    assert dict(got.envelope.properties) == dict(sent.properties)
    assert got.envelope.content_type == "application/x-custom"
    assert got.envelope.content_encoding == "binary"
    assert got.redelivered is False
    assert got.delivery_count == 1
    broker.ack([got])


def test_fifo_within_a_priority(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    for i in range(20):
        broker.publish("q", make_envelope(f"t{i}"))
    got = drain(broker, ["q"])
    assert task_ids(got) == [f"t{i}" for i in range(20)]


def test_higher_priority_first(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    for task_id, priority in [("low", 0), ("high", 9), ("mid", 5), ("none", None), ("high2", 9)]:
        broker.publish("q", make_envelope(task_id, priority=priority))
    assert task_ids(drain(broker, ["q"])) == ["high", "high2", "mid", "low", "none"]


def test_batch_respects_priority(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish_many(
        [("q", make_envelope(f"t{i}", priority=i % 3)) for i in range(9)],
    )
    got = broker.consume(["q"], 9, EVENTUALLY_S)
    assert task_ids(got) == ["t2", "t5", "t8", "t1", "t4", "t7", "t0", "t3", "t6"]


def test_eta_not_delivered_before_due(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    sent = make_envelope("later", eta_in_s=0.3)
    due = sent.eta_timestamp()
    assert due is not None
    broker.publish("q", sent)
    broker.publish("q", make_envelope("now"))
    assert task_ids(broker.consume(["q"], 10, 0)) == ["now"]
    assert broker.queue_size("q") == 1
    got = broker.consume(["q"], 10, EVENTUALLY_S)
    assert time.time() >= due
    assert task_ids(got) == ["later"]


def test_eta_in_the_past_is_ready(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish("q", make_envelope("past", eta_in_s=-10))
    assert task_ids(broker.consume(["q"], 10, 0)) == ["past"]


def test_consume_timeout_returns_empty(broker: Broker) -> None:
    started = time.monotonic()
    assert broker.consume(["q"], 10, 0.1) == []
    assert time.monotonic() - started >= 0.09
    assert broker.consume(["q"], 10, 0) == []


def test_consume_wakes_on_publish_from_another_thread(
    broker: Broker, make_envelope: EnvelopeFactory
) -> None:
    import threading

    timer = threading.Timer(0.1, broker.publish, ("q", make_envelope("late")))
    timer.start()
    try:
        assert task_ids(broker.consume(["q"], 10, EVENTUALLY_S)) == ["late"]
    finally:
        timer.join()


def test_ack_removes(make_broker: BrokerFactory, make_envelope: EnvelopeFactory) -> None:
    broker = make_broker(visibility_timeout=0.2)
    broker.publish("q", make_envelope("t1"))
    got = broker.consume(["q"], 10, EVENTUALLY_S)
    broker.ack(got)
    assert broker.consume(["q"], 10, 0.5) == []
    assert broker.queue_size("q") == 0


def test_unacked_message_redelivered_after_lease_expiry(
    make_broker: BrokerFactory, make_envelope: EnvelopeFactory
) -> None:
    broker = make_broker(visibility_timeout=0.2)
    broker.publish("q", make_envelope("t1"))
    before_claim = time.time()
    first = broker.consume(["q"], 10, EVENTUALLY_S)
    again = broker.consume(["q"], 10, EVENTUALLY_S)
    assert time.time() >= before_claim + 0.19
    assert task_ids(first) == task_ids(again) == ["t1"]
    broker.ack(again)


def test_redelivery_is_flagged(make_broker: BrokerFactory, make_envelope: EnvelopeFactory) -> None:
    broker = make_broker(visibility_timeout=0.2)
    broker.publish("q", make_envelope("t1"))
    broker.consume(["q"], 10, EVENTUALLY_S)
    [again] = broker.consume(["q"], 10, EVENTUALLY_S)
    assert again.redelivered is True
    assert again.delivery_count == 2


def test_renew_keeps_the_lease(make_broker: BrokerFactory, make_envelope: EnvelopeFactory) -> None:
    broker = make_broker(visibility_timeout=0.5)
    broker.publish("q", make_envelope("t1"))
    held = broker.consume(["q"], 10, EVENTUALLY_S)
    until = time.monotonic() + 1.2
    while time.monotonic() < until:
        broker.renew(held)
        assert broker.consume(["q"], 10, 0.05) == []
    # Once renewing stops, the lease runs out and the message comes back.
    assert task_ids(broker.consume(["q"], 10, EVENTUALLY_S)) == ["t1"]


def test_requeue_makes_available_now(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish("q", make_envelope("t1"))
    held = broker.consume(["q"], 10, EVENTUALLY_S)
    assert broker.consume(["q"], 10, 0) == []
    broker.requeue(held)
    assert broker.queue_size("q") == 1
    assert task_ids(broker.consume(["q"], 10, 0)) == ["t1"]


def test_reject_removes_and_logs_reason(
    broker: Broker, coordination: CoordinationStore, make_envelope: EnvelopeFactory
) -> None:
    broker.publish("q", make_envelope("bad", body=b"not json"))
    broker.publish("q", make_envelope("worse"))
    held = broker.consume(["q"], 10, EVENTUALLY_S)
    broker.reject(held[:1], "cannot decode")
    broker.reject(held[1:], "unknown task")
    assert broker.consume(["q"], 10, 0) == []
    assert broker.queue_size("q") == 0
    records = coordination.rejected()
    assert [(env.task_id, reason) for env, reason in records[-2:]] == [
        ("bad", "cannot decode"),
        ("worse", "unknown task"),
    ]
    assert records[-2][0].body == b"not json"
    assert [env.task_id for env, _ in coordination.rejected(limit=1)] == ["worse"]


def test_purge_removes_only_unclaimed_of_named_queues(
    broker: Broker, make_envelope: EnvelopeFactory
) -> None:
    broker.publish_many([("a", make_envelope(f"a{i}")) for i in range(3)])
    broker.publish("a", make_envelope("a-later", eta_in_s=60))
    broker.publish_many([("b", make_envelope(f"b{i}")) for i in range(2)])
    held = broker.consume(["a"], 1, EVENTUALLY_S)
    assert task_ids(held) == ["a0"]
    assert broker.purge(["a"]) == 3
    assert broker.queue_size("a") == 0
    assert broker.queue_size("b") == 2
    assert broker.consume(["a"], 10, 0) == []
    broker.ack(held)
    assert broker.purge(["a", "b"]) == 2
    assert broker.purge(["a", "b"]) == 0


def test_queue_size_counts_ready_and_scheduled(
    broker: Broker, make_envelope: EnvelopeFactory
) -> None:
    assert broker.queue_size("q") == 0
    broker.publish_many([("q", make_envelope(f"t{i}")) for i in range(4)])
    broker.publish("q", make_envelope("later", eta_in_s=60))
    broker.publish("other", make_envelope("elsewhere"))
    assert broker.queue_size("q") == 5
    broker.consume(["q"], 2, EVENTUALLY_S)
    assert broker.queue_size("q") == 3


def test_reject_without_a_sink_still_removes(
    make_broker: BrokerFactory, coordination: CoordinationStore, make_envelope: EnvelopeFactory
) -> None:
    broker = make_broker()
    broker.rejected_sink = None
    broker.publish("q", make_envelope("lonely"))
    broker.reject(broker.consume(["q"], 10, EVENTUALLY_S), "no log")
    assert broker.queue_size("q") == 0
    assert coordination.rejected() == []


def test_publish_many_keeps_order(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    items = [("a" if i % 2 else "b", make_envelope(f"t{i}")) for i in range(40)]
    broker.publish_many(items)
    broker.publish_many([])
    assert task_ids(drain(broker, ["a"])) == [f"t{i}" for i in range(1, 40, 2)]
    assert task_ids(drain(broker, ["b"])) == [f"t{i}" for i in range(0, 40, 2)]


def test_consume_across_queues(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish("a", make_envelope("a1"))
    broker.publish("b", make_envelope("b1", priority=9))
    broker.publish("c", make_envelope("c1"))
    broker.publish("a", make_envelope("a2"))
    got = broker.consume(["a", "b"], 10, EVENTUALLY_S)
    assert task_ids(got) == ["b1", "a1", "a2"]
    assert {d.task_id: d.queue for d in got} == {"b1": "b", "a1": "a", "a2": "a"}
    assert broker.queue_size("c") == 1


def test_max_messages_respected(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish_many([("q", make_envelope(f"t{i}")) for i in range(10)])
    first = broker.consume(["q"], 3, EVENTUALLY_S)
    assert task_ids(first) == ["t0", "t1", "t2"]
    assert broker.queue_size("q") == 7
    rest = broker.consume(["q"], 100, EVENTUALLY_S)
    assert task_ids(rest) == [f"t{i}" for i in range(3, 10)]
    broker.ack(first + rest)
    assert broker.queue_size("q") == 0


def test_ack_requeue_reject_of_nothing(broker: Broker) -> None:
    broker.ack([])
    broker.requeue([])
    broker.reject([], "nothing")
    broker.renew([])
    assert broker.purge([]) == 0


def test_close_then_reuse(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish("q", make_envelope("t1"))
    broker.close()
    assert task_ids(broker.consume(["q"], 10, EVENTUALLY_S)) == ["t1"]
