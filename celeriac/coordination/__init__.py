"""Coordination stores by URL scheme: revokes, worker presence, dedup keys and the rejected
log (:mod:`celeriac.coordination.base`; docs/decisions/0012). Implementations are imported
only when a URL asks for them.

The built-in stores are listed here; other packages add theirs through the
``celeriac.coordination`` entry-point group, as for brokers (docs/decisions/0010).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac._utils.plugins import Plugin, PluginRegistry, scheme_of
from celeriac.coordination.base import CoordinationStore, WorkerRecord
from celeriac.exceptions import ImproperlyConfigured

#: Each entry's schemes are the class's own ``schemes`` (a test holds them equal).
STORES = PluginRegistry(
    "coordination store",
    "celeriac.coordination",
    [
        Plugin("celeriac.coordination.memory:MemoryCoordination", ("memory",)),
        Plugin("celeriac.coordination.sqlite:SQLiteCoordination", ("sqlite", "sqla+sqlite")),
        Plugin(
            "celeriac.coordination.redis:RedisCoordination",
            ("redis", "rediss", "redis+socket", "unix", "sentinel"),
            extras=("redis",),
        ),
        Plugin(
            "celeriac.coordination.postgres:PostgresCoordination",
            ("postgresql", "postgres", "db+postgresql", "db+postgres", "db+postgresql+psycopg",
             "db+postgresql+psycopg2"),
            extras=("postgres",),
        ),
    ],
)


def has_store(url: str) -> bool:
    """Whether a coordination store serves ``url``'s scheme (built in or installed)."""
    return scheme_of(url) in STORES.schemes()


def store_class(url: str) -> type[CoordinationStore]:
    """The store class serving ``url``; ImproperlyConfigured says why there is none."""
    cls: type[CoordinationStore] = STORES.load(url, CoordinationStore)
    return cls


def create_store(url: str, options: Mapping[str, Any] | None = None) -> CoordinationStore:
    return store_class(url)(url, options=options)




def choose_url(
    configured: str | None, broker_url: str, backend_url: str | None, in_process: bool = False
) -> str:
    """The coordination store's URL: ``coordination_url`` when set; else the broker's URL when
    a store serves its scheme (memory, SQLite, Redis: the state stays where it always was);
    else the result backend's; else, for a broker that lives in one process (``in_process``,
    e.g. a third-party test transport), a ``memory://`` store of its own. ImproperlyConfigured
    when none applies (e.g. an AMQP broker with an RPC backend): set ``coordination_url``."""
    if configured:
        return configured
    if has_store(broker_url):
        return broker_url
    if backend_url and has_store(backend_url):
        return backend_url
    if in_process:
        return f"memory://{broker_url}"
    raise ImproperlyConfigured(
        f"No coordination store serves the broker URL ({scheme_of(broker_url)}://) or the "
        "result backend: set coordination_url (e.g. 'redis://localhost:6379/0' or "
        f"'sqlite:///celeriac.db'). Supported: {', '.join(STORES.schemes())}."
    )


def open_store(
    conf: Mapping[str, Any], broker_url: str, backend_url: str | None, in_process: bool = False
) -> CoordinationStore:
    """The coordination store an app with settings ``conf`` uses (see :func:`choose_url`). A
    store on the broker's URL takes the broker's transport options (so a Redis
    ``global_keyprefix`` is shared), one on the backend's the backend's, and
    ``coordination_transport_options`` wins over both."""
    url = choose_url(conf.get("coordination_url"), broker_url, backend_url, in_process)
    options: dict[str, Any] = {}
    if url == broker_url:
        options.update(conf.get("broker_transport_options") or {})
    elif url == backend_url:
        options.update(conf.get("result_backend_transport_options") or {})
    options.update(conf.get("coordination_transport_options") or {})
    return create_store(url, options)


__all__ = [
    "STORES",
    "CoordinationStore",
    "WorkerRecord",
    "choose_url",
    "create_store",
    "has_store",
    "open_store",
    "store_class",
]
