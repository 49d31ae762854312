"""Fixtures of the broker contract suite: one ``broker`` per transport.

Brokers made here log what they reject to ``coordination``, the coordination store on the same
URL (as ``app.broker`` does through ``app.coordination``).

A later transport joins the suite by adding its name to ``BROKER_KINDS`` and a branch to
``_url_for`` (skipping when its service is not reachable).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from celeriac.brokers import Broker, create_broker
from celeriac.brokers import memory as memory_broker
from celeriac.coordination import CoordinationStore, create_store
from celeriac.coordination import memory as memory_store
from celeriac.message import Envelope
from tests.postgres.support import drop_schema, postgres_url
from tests.redis.support import BROKER_DB, drop_keys, redis_url

BROKER_KINDS = ["memory", "sqlite", "redis", "postgresql"]

BrokerFactory = Callable[..., Broker]
EnvelopeFactory = Callable[..., Envelope]


def _url_for(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    if kind == "redis":
        return redis_url(BROKER_DB)
    if kind == "postgresql":
        return postgres_url()
    raise AssertionError(f"unknown broker kind {kind}")


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def broker_url(broker_kind: str, tmp_path: Path) -> Iterator[str]:
    url = _url_for(broker_kind, tmp_path)
    yield url
    if broker_kind == "memory":
        memory_broker.reset(url)
        memory_store.reset(url)
    if broker_kind == "redis":
        drop_keys(url)
    if broker_kind == "postgresql":
        drop_schema(url)


@pytest.fixture
def coordination(broker_url: str) -> Iterator[CoordinationStore]:
    """The coordination store on the suite's URL: where the brokers' rejects are logged."""
    store = create_store(broker_url)
    yield store
    store.close()


@pytest.fixture
def make_broker(broker_url: str, coordination: CoordinationStore) -> Iterator[BrokerFactory]:
    """Brokers on the suite's URL (so they share queues), each with its own transport options."""
    made: list[Broker] = []

    def make(**transport_options: Any) -> Broker:
        broker = create_broker(broker_url, transport_options)
        broker.rejected_sink = coordination.record_rejected
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def broker(make_broker: BrokerFactory) -> Broker:
    return make_broker()


def envelope(
    task_id: str | None = None,
    *,
    priority: int | None = None,
    eta_in_s: float | None = None,
    body: bytes = b"[[2, 2], {}, {}]",
    **headers: Any,
) -> Envelope:
    """A task-like envelope; ``eta_in_s`` schedules it that many seconds from now."""
    task_id = task_id or uuid.uuid4().hex
    all_headers: dict[str, Any] = {"id": task_id, "task": "tests.add", **headers}
    if eta_in_s is not None:
        all_headers["eta"] = (datetime.now(UTC) + timedelta(seconds=eta_in_s)).isoformat()
    properties: dict[str, Any] = {"correlation_id": task_id}
    if priority is not None:
        properties["priority"] = priority
    return Envelope(body=body, headers=all_headers, properties=properties)


@pytest.fixture
def make_envelope() -> EnvelopeFactory:
    return envelope
