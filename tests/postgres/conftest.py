"""Fixtures of the PostgreSQL tests: a URL with a schema of its own per test, dropped after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac.brokers.postgres import PostgresBroker
from tests.postgres.support import drop_schema, postgres_url

BrokerFactory = Callable[..., PostgresBroker]


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = postgres_url()
    yield url
    drop_schema(url)


@pytest.fixture
def make_broker(pg_url: str) -> Iterator[BrokerFactory]:
    made: list[PostgresBroker] = []

    def make(**transport_options: Any) -> PostgresBroker:
        broker = PostgresBroker(pg_url, transport_options=transport_options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def broker(make_broker: BrokerFactory) -> PostgresBroker:
    return make_broker()
