"""Result backends by URL scheme. Implementations are imported only when a URL asks for them.

The built-in backends are listed here; other packages add theirs through the
``celeriac.backends`` entry-point group (docs/brokers.md; docs/decisions/0010).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac._utils.plugins import Plugin, PluginRegistry, scheme_of
from celeriac.backends.base import ResultBackend

#: Each entry's schemes are the class's own ``schemes`` (a test holds them equal).
BACKENDS = PluginRegistry(
    "result backend",
    "celeriac.backends",
    [
        Plugin("celeriac.backends.memory:MemoryBackend", ("memory", "cache+memory")),
        Plugin("celeriac.backends.sqlite:SQLiteBackend", ("sqlite",)),
        Plugin(
            "celeriac.backends.sql:SQLBackend",
            (
                "db+postgresql", "db+postgres", "db+postgresql+psycopg", "db+postgresql+psycopg2",
                "db+mysql", "db+mysql+pymysql", "db+mysql+mysqldb", "db+mariadb+pymysql",
                "db+sqlite",
            ),
            extras=("sql",),
        ),
        Plugin(
            "celeriac.backends.memcached:MemcachedBackend",
            ("cache+memcached",),
            extras=("memcached",),
        ),
        Plugin(
            "celeriac.backends.redis:RedisBackend",
            ("redis", "rediss", "redis+socket", "unix", "sentinel"),
            extras=("redis",),
        ),
        Plugin("celeriac.backends.rpc:RPCBackend", ("rpc",), extras=("amqp",)),
        Plugin(
            "celeriac.contrib.django.results.backends:DatabaseBackend",
            ("django-db",),
            extras=("django",),
        ),
        Plugin(
            "celeriac.contrib.django.results.backends:CacheBackend",
            ("django-cache",),
            extras=("django",),
        ),
    ],
)


def backend_class(url: str) -> type[ResultBackend]:
    """The result backend class serving ``url``; ImproperlyConfigured says why there is none."""
    cls: type[ResultBackend] = BACKENDS.load(url, ResultBackend)
    return cls


def create_backend(url: str, options: Mapping[str, Any] | None = None) -> ResultBackend:
    return backend_class(url)(url, options=options)


__all__ = ["BACKENDS", "ResultBackend", "backend_class", "create_backend", "scheme_of"]
