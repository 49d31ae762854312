"""``Broker.broadcast``/``subscribe``: every current subscriber gets each payload, in order; a
subscriber made after a broadcast does not get it."""

from __future__ import annotations

import threading
import time

import pytest

from celeriac.brokers import Broker
from tests.brokers.conftest import BrokerFactory


@pytest.fixture(autouse=True)
def _broadcast_only(broker: Broker) -> None:
    if not broker.capabilities.broadcast:
        pytest.skip(f"{broker.url}: no broadcast")


def collect(subscription: object, count: int, timeout_s: float = 5.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        got += subscription.get(0.2)  # type: ignore[attr-defined]
    return got


def test_two_subscribers_both_receive_in_order(make_broker: BrokerFactory) -> None:
    sender, listener = make_broker(), make_broker()
    with listener.subscribe("control") as first, listener.subscribe("control") as second:
        sender.broadcast("control", b"one")
        sender.broadcast("control", b"two")
        assert collect(first, 2) == [b"one", b"two"]
        assert collect(second, 2) == [b"one", b"two"]


def test_a_later_subscriber_does_not_get_earlier_payloads(broker: Broker) -> None:
    with broker.subscribe("events") as early:
        broker.broadcast("events", b"before")
        with broker.subscribe("events") as late:
            broker.broadcast("events", b"after")
            assert collect(early, 2) == [b"before", b"after"]
            assert collect(late, 1) == [b"after"]
            assert late.get(0.1) == []


def test_channels_are_separate(broker: Broker) -> None:
    with broker.subscribe("a") as on_a, broker.subscribe("b") as on_b:
        broker.broadcast("a", b"for-a")
        assert collect(on_a, 1) == [b"for-a"]
        assert on_b.get(0.2) == []


def test_get_times_out_empty_and_wakes_on_a_broadcast(broker: Broker) -> None:
    with broker.subscribe("c") as subscription:
        started = time.monotonic()
        assert subscription.get(0.1) == []
        assert time.monotonic() - started >= 0.09
        timer = threading.Timer(0.1, broker.broadcast, ("c", b"wake"))
        timer.start()
        try:
            assert subscription.get(5.0) == [b"wake"]
        finally:
            timer.join()


def test_a_closed_subscription_receives_nothing(broker: Broker) -> None:
    subscription = broker.subscribe("c")
    subscription.close()
    subscription.close()
    broker.broadcast("c", b"late")
    assert subscription.get(0.1) == []
