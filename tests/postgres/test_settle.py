"""settle_with: with the SQLAlchemy result backend on the same PostgreSQL database, results are
stored and messages acked in one transaction; elsewhere there is no settler."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from celeriac import states
from celeriac.backends import ResultBackend, create_backend
from celeriac.brokers.postgres import PostgresBroker
from celeriac.exceptions import TransportError
from tests.brokers.conftest import envelope
from tests.postgres.support import schema_of, server_url


@pytest.fixture
def backend(pg_url: str, broker: PostgresBroker) -> Iterator[ResultBackend]:
    broker.queue_size("q")  # the schema exists from here on
    base = server_url().replace("postgresql://", "db+postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    made = create_backend(f"{base}{sep}options={quote('-csearch_path=' + schema_of(pg_url))}")
    yield made
    made.close()


def test_results_and_acks_commit_together(broker: PostgresBroker,
                                          backend: ResultBackend) -> None:
    broker.publish_many([("q", envelope("a")), ("q", envelope("b")), ("q", envelope("c"))])
    deliveries = broker.consume(["q"], 10, 5.0)
    settle = broker.settle_with(backend)
    assert settle is not None
    settle([("a", states.SUCCESS, b'{"status": "SUCCESS"}'),
            ("b", states.FAILURE, b'{"status": "FAILURE"}')], None, deliveries[:2])
    assert backend.get_state("a") == states.SUCCESS
    assert backend.get_state("b") == states.FAILURE
    assert broker.queue_size("q") == 0
    broker.requeue(deliveries[2:])
    # A row that went back to the queue is not ours to delete any more.
    settle([("c", states.SUCCESS, b'{"status": "SUCCESS"}')], None, deliveries[2:])
    assert broker.queue_size("q") == 1
    assert [d.task_id for d in broker.consume(["q"], 10, 5.0)] == ["c"]


def test_an_ack_that_fails_takes_the_results_back(
    broker: PostgresBroker, backend: ResultBackend
) -> None:
    broker.publish("q", envelope("a"))
    [delivery] = broker.consume(["q"], 10, 5.0)
    settle = broker.settle_with(backend)
    assert settle is not None
    # The results are written first; the ack's statement then fails on a tag that is no id.
    bad = dataclasses.replace(delivery, tag="not-an-id")
    with pytest.raises(TransportError):
        settle([("a", states.SUCCESS, b'{"status": "SUCCESS"}')], None, [delivery, bad])
    assert backend.get_state("a") is None  # rolled back with the ack
    assert broker.consume(["q"], 10, 0.0) == []  # still ours, not acked
    broker.requeue([delivery])
    assert broker.queue_size("q") == 1


def test_no_settler_on_another_database(broker: PostgresBroker) -> None:
    memory = create_backend("memory://pg-settle-test")
    other = create_backend("db+postgresql+psycopg://postgres@127.0.0.1:5432/not_this_one")
    try:
        assert broker.settle_with(memory) is None
        assert broker.settle_with(other) is None
    finally:
        memory.close()
        other.close()
