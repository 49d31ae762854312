"""Brokers by URL scheme. Implementations are imported only when a URL asks for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac._utils.imports import symbol_by_name
from celeriac.brokers.base import Broker, WorkerRecord
from celeriac.exceptions import ImproperlyConfigured

BROKERS: dict[str, str] = {
    "memory": "celeriac.brokers.memory:MemoryBroker",
    "sqlite": "celeriac.brokers.sqlite:SQLiteBroker",
    "sqla+sqlite": "celeriac.brokers.sqlite:SQLiteBroker",
    "redis": "celeriac.brokers.redis:RedisBroker",
    "rediss": "celeriac.brokers.redis:RedisBroker",
    "redis+socket": "celeriac.brokers.redis:RedisBroker",
    "unix": "celeriac.brokers.redis:RedisBroker",
    "sentinel": "celeriac.brokers.redis:RedisBroker",
    "amqp": "celeriac.brokers.amqp:AMQPBroker",
    "amqps": "celeriac.brokers.amqp:AMQPBroker",
    "pyamqp": "celeriac.brokers.amqp:AMQPBroker",
    "postgres": "celeriac.brokers.postgres:PostgresBroker",
    "postgresql": "celeriac.brokers.postgres:PostgresBroker",
}


def scheme_of(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else url.lower()


def broker_class(url: str) -> type[Broker]:
    scheme = scheme_of(url)
    path = BROKERS.get(scheme)
    if path is None:
        raise ImproperlyConfigured(
            f"No broker for URL scheme {scheme!r} (known: {', '.join(sorted(BROKERS))})"
        )
    try:
        cls: type[Broker] = symbol_by_name(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"The {scheme!r} broker needs an optional dependency: {exc}. "
            f"Install it with: pip install 'celeriac[{scheme.split('+')[0]}]'"
        ) from exc
    return cls


def create_broker(url: str, transport_options: Mapping[str, Any] | None = None) -> Broker:
    return broker_class(url)(url, transport_options=transport_options)


__all__ = ["BROKERS", "Broker", "WorkerRecord", "broker_class", "create_broker", "scheme_of"]
