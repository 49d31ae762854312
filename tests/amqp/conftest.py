"""Fixtures of the AMQP tests: brokers on this run's vhost, cleaned up after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac.brokers.amqp import AMQPBroker
from tests.amqp import support

AmqpFactory = Callable[..., AMQPBroker]


@pytest.fixture
def amqp_url() -> str:
    return support.amqp_url()


@pytest.fixture
def make_amqp(amqp_url: str) -> Iterator[AmqpFactory]:
    """AMQP brokers on this run's vhost, each with its own transport options; whatever they
    declared is deleted afterwards."""
    made: list[AMQPBroker] = []

    def make(url: str | None = None, **transport_options: Any) -> AMQPBroker:
        broker = AMQPBroker(url or amqp_url, transport_options=transport_options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()
        support.cleanup(broker)
