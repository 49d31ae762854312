"""The brokers the chaos scenarios run on, each in storage of its own: a fresh SQLite file, a
fresh key prefix on the test Redis, a RabbitMQ virtual host of its own, a PostgreSQL schema of
its own (``tests/support/services.py`` makes and removes the last two).

Results: SQLite and Redis keep them beside the messages (one transaction with the ack).
PostgreSQL keeps them in Celery's tables through SQLAlchemy (``db+postgresql://``) on the same
database, in a schema of their own, so a worker stores results and acks in one transaction
(``PostgresBroker.settle_with``). RabbitMQ stores no results: they go to the test Redis (the
pairing docs/amqp.md shows), so there a result is stored first and its message acked after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.chaos import inject

KINDS = ("sqlite", "redis", "amqp", "postgresql")
#: the worker's fixed prefetch multiplier in RabbitMQ's connection cuts (Celery's default): the
#: bound of what a cut may re-run is what the worker held, concurrency x (1 + this)
AMQP_CUT_PREFETCH = 4


@dataclass(frozen=True)
class Target:
    label: str
    broker_url: str
    #: None: the broker's own URL (its transport stores results too)
    backend_url: str | None
    #: writes malformed messages straight into the broker's storage; returns how many
    inject: Callable[[Any], int]
    #: whether a result and its message's ack are one transaction (else: result, then ack)
    atomic_settle: bool


@contextmanager
def target(kind: str, root: Path) -> Iterator[Target]:
    """An isolated target of ``kind`` (one of :data:`KINDS`); ``root`` is a private directory.
    Everything stored under it is removed on exit."""
    from tests.support.services import backend_url, broker_url

    with ExitStack() as stack:
        if kind == "sqlite":
            yield Target(kind, f"sqlite:///{root / 'broker.db'}", None, inject.into_sqlite, True)
        elif kind == "redis":
            from tests.redis.support import SPARE_DB, drop_keys, redis_url

            url = redis_url(SPARE_DB)
            stack.callback(drop_keys, url)
            yield Target(kind, url, None, inject.into_redis, True)
        elif kind == "amqp":
            url = stack.enter_context(broker_url("amqp", root))
            results = stack.enter_context(backend_url("redis", root))
            yield Target(kind, url, results, inject.into_amqp, False)
        elif kind == "postgresql":
            url = stack.enter_context(broker_url("postgresql", root))
            results = stack.enter_context(backend_url("postgresql", root))
            yield Target(kind, url, results, inject.into_postgres, True)
        else:
            raise AssertionError(f"unknown chaos target {kind!r}")


class AmqpConnectionCut:
    """The chaos harness's broker restart (``url``, ``stop()``, ``start()``) on RabbitMQ, which
    is shared and never restarted by a test: ``stop()`` closes every connection of the URL's
    own virtual host from the server side (``rabbitmqctl close_connection``, as
    tests/amqp/test_amqp_reconnect.py does at broker level), so the worker and the producer
    lose their connections at once; ``start()`` has nothing to do."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.vhost = unquote(urlsplit(url).path[1:]) or "/"

    def stop(self) -> None:
        from tests.amqp.support import close_connections

        if close_connections(self.vhost) < 1:
            raise AssertionError(f"no connection to vhost {self.vhost!r} to close")

    def start(self) -> None:
        return None
