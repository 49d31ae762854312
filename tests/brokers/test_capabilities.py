"""Each broker's declared ``capabilities`` match what it does (where that is cheap to see)."""

from __future__ import annotations

import time

from celeriac.brokers import Broker, Capabilities
from tests.brokers.conftest import BrokerFactory, EnvelopeFactory


def test_capabilities_are_declared(broker: Broker) -> None:
    assert isinstance(type(broker).capabilities, Capabilities)


def test_native_delays(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish("q", make_envelope("later", eta_in_s=60))
    held_back = broker.consume(["q"], 10, 0.0) == []
    assert held_back == broker.capabilities.native_delays


def test_priorities(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish("q", make_envelope("low", priority=0))
    broker.publish("q", make_envelope("high", priority=9))
    first = broker.consume(["q"], 1, 5.0)[0].task_id
    assert (first == "high") == broker.capabilities.priorities


def test_leases(make_broker: BrokerFactory, make_envelope: EnvelopeFactory) -> None:
    broker = make_broker(visibility_timeout=0.2)
    broker.publish("q", make_envelope("t1"))
    assert broker.consume(["q"], 1, 5.0)
    time.sleep(0.4)
    came_back = broker.consume(["q"], 1, 2.0) != []
    assert came_back == broker.capabilities.leases


def test_oldest_age_of_ready_messages(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    assert broker.oldest_age_s("q") is None
    broker.publish("q", make_envelope("first"))
    time.sleep(0.2)
    broker.publish("q", make_envelope("second"))
    broker.publish("q", make_envelope("scheduled", eta_in_s=60))
    age = broker.oldest_age_s("q")
    if age is None:  # a transport that cannot tell
        return
    assert 0.15 <= age < 30
    held = broker.consume(["q"], 1, 5.0)
    assert [d.task_id for d in held] == ["first"]
    younger = broker.oldest_age_s("q")
    assert younger is not None and younger < age
    broker.consume(["q"], 1, 5.0)
    assert broker.oldest_age_s("q") is None  # only the scheduled one is left
