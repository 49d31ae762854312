"""Coordination stores by URL scheme: revokes, worker presence, dedup keys and the rejected
log (:mod:`celeriac.coordination.base`; docs/decisions/0012). Implementations are imported
only when a URL asks for them.

The built-in stores are listed here; other packages add theirs through the
``celeriac.coordination`` entry-point group, as for brokers (docs/decisions/0010).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celeriac._utils.plugins import Plugin, PluginRegistry, scheme_of
from celeriac.coordination.base import CoordinationStore, WorkerRecord

logger = logging.getLogger("celeriac.coordination")

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




#: the store used when nothing else serves (see :func:`choose_url`); one per process
LOCAL_FALLBACK_PREFIX = "memory://process-local-"
_warned: set[str] = set()


def choose_url(
    configured: str | None, broker_url: str, backend_url: str | None, in_process: bool = False
) -> str:
    """The coordination store's URL: ``coordination_url`` when set; else the broker's URL when
    a store serves its scheme (memory, SQLite, Redis: the state stays where it always was);
    else the result backend's; else, for a broker that lives in one process (``in_process``,
    e.g. a third-party test transport), a ``memory://`` store of its own.

    When none applies (e.g. an AMQP broker with an RPC backend, or none) the store is
    process-local memory (``memory://process-local-<scheme>``), as Celery keeps revokes in
    each worker's memory: revokes are still broadcast to the workers, but a worker started
    later does not know them, and beat's exactly-once across several schedulers needs a
    shared store. :func:`open_store` logs that once per process."""
    if configured:
        return configured
    if has_store(broker_url):
        return broker_url
    if backend_url and has_store(backend_url):
        return backend_url
    if in_process:
        return f"memory://{broker_url}"
    return LOCAL_FALLBACK_PREFIX + scheme_of(broker_url)


def _warn_local(url: str, broker_url: str, backend_url: str | None) -> None:
    if url in _warned:
        return
    _warned.add(url)
    backend = f"{scheme_of(backend_url)}://" if backend_url else "none"
    logger.warning(
        "No coordination store serves the broker (%s://) or the result backend (%s): revokes "
        "live only in this process's memory, as in Celery (they are still broadcast to the "
        "workers running now), and beat's exactly-once across several schedulers needs a "
        "shared store: set coordination_url (e.g. 'redis://localhost:6379/0'). Supported: %s.",
        scheme_of(broker_url), backend, ", ".join(STORES.schemes()),
    )


def open_store(
    conf: Mapping[str, Any], broker_url: str, backend_url: str | None, in_process: bool = False
) -> CoordinationStore:
    """The coordination store an app with settings ``conf`` uses (see :func:`choose_url`). A
    store on the broker's URL takes the broker's transport options (so a Redis
    ``global_keyprefix`` is shared), one on the backend's the backend's, and
    ``coordination_transport_options`` wins over both."""
    url = choose_url(conf.get("coordination_url"), broker_url, backend_url, in_process)
    if url.startswith(LOCAL_FALLBACK_PREFIX):
        _warn_local(url, broker_url, backend_url)
    options: dict[str, Any] = {}
    if url == broker_url:
        options.update(conf.get("broker_transport_options") or {})
        if conf.get("broker_use_ssl"):
            options.setdefault("broker_use_ssl", conf["broker_use_ssl"])
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
