"""Brokers by URL scheme. Implementations are imported only when a URL asks for them.

The built-in brokers are listed here; other packages add theirs through the ``celeriac.brokers``
entry-point group (docs/brokers.md, "Writing a transport"; docs/decisions/0010).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac._utils.plugins import Plugin, PluginRegistry, scheme_of
from celeriac.brokers.base import Broker, Capabilities, Subscription

#: Each entry's schemes are the class's own ``schemes`` (a test holds them equal).
BROKERS = PluginRegistry(
    "broker",
    "celeriac.brokers",
    [
        Plugin("celeriac.brokers.memory:MemoryBroker", ("memory",)),
        Plugin("celeriac.brokers.sqlite:SQLiteBroker", ("sqlite", "sqla+sqlite")),
        Plugin(
            "celeriac.brokers.redis:RedisBroker",
            ("redis", "rediss", "redis+socket", "unix", "sentinel"),
            extras=("redis",),
        ),
        Plugin(
            "celeriac.brokers.postgres:PostgresBroker", ("postgresql", "postgres"),
            extras=("postgres",),
        ),
        Plugin(
            "celeriac.brokers.amqp:AMQPBroker", ("amqp", "amqps", "pyamqp"), extras=("amqp",)
        ),
    ],
)


def broker_class(url: str) -> type[Broker]:
    """The broker class serving ``url``; ImproperlyConfigured says why there is none."""
    cls: type[Broker] = BROKERS.load(url, Broker)
    return cls


def create_broker(url: str, transport_options: Mapping[str, Any] | None = None) -> Broker:
    return broker_class(url)(url, transport_options=transport_options)


__all__ = [
    "BROKERS",
    "Broker",
    "Capabilities",
    "Subscription",
    "broker_class",
    "create_broker",
    "scheme_of",
]
