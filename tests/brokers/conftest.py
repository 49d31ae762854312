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
from celeriac.coordination import CoordinationStore, create_store, has_store
from celeriac.coordination import memory as memory_store
from celeriac.message import Envelope
from tests.amqp import support as amqp_support
from tests.postgres.support import drop_schema, postgres_url
from tests.redis.support import BROKER_DB, drop_keys, redis_url

BROKER_KINDS = ["memory", "sqlite", "redis", "postgresql"]
BROKER_KINDS.append("amqp")

# Tests that do not apply to a kind, with the reason (the contract allows the difference).
_AMQP_NO_LEASES = (
    "AMQP has no leases (Capabilities.leases=False): an unacked message comes back when its "
    "channel closes, which tests/amqp/test_amqp_broker.py checks"
)
_AMQP_SHARED_DELAYS = (
    "AMQP delays wait in delay queues shared by every queue (docs/decisions/0020): a queue's "
    "size and purge cover its ready messages"
)
NOT_APPLICABLE = {
    ("amqp", "test_unacked_message_redelivered_after_lease_expiry"): _AMQP_NO_LEASES,
    ("amqp", "test_redelivery_is_flagged"): _AMQP_NO_LEASES,
    ("amqp", "test_renew_keeps_the_lease"): _AMQP_NO_LEASES,
    ("amqp", "test_queue_size_counts_ready_and_scheduled"): _AMQP_SHARED_DELAYS,
    ("amqp", "test_eta_not_delivered_before_due"): _AMQP_SHARED_DELAYS
    + " (tests/amqp/test_amqp_broker.py checks not-before and eventually)",
    ("amqp", "test_purge_removes_only_unclaimed_of_named_queues"): _AMQP_SHARED_DELAYS,
    ("amqp", "test_oldest_age_of_ready_messages"): (
        "AMQP cannot see a queue's oldest message without taking it: oldest_age_s is None"
    ),
}

BrokerFactory = Callable[..., Broker]
EnvelopeFactory = Callable[..., Envelope]


def _url_for(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    if kind == "redis":
        return redis_url(BROKER_DB)
    if kind == "amqp":
        # priorities on, so the ordering tests apply (tests/amqp covers the default: off)
        return amqp_support.amqp_url(max_priority=9)
    if kind == "postgresql":
        return postgres_url()
    raise AssertionError(f"unknown broker kind {kind}")


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def broker_url(broker_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    reason = NOT_APPLICABLE.get((broker_kind, getattr(request.node, "originalname", "")))
    if reason:
        pytest.skip(reason)
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
    """The coordination store on the suite's URL: where the brokers' rejects are logged (a
    memory store of its own for a broker without one, e.g. AMQP)."""
    store = create_store(broker_url if has_store(broker_url) else f"memory://{uuid.uuid4().hex}")
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
        amqp_support.cleanup(broker)


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
