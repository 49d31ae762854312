"""Pools by name: solo, threads, prefork (and later asyncio)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac._utils.imports import symbol_by_name
from celeriac.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from celeriac.app.base import Celery
    from celeriac.worker.pools.base import Pool

POOLS = {
    "solo": "celeriac.worker.pools.solo:SoloPool",
    "threads": "celeriac.worker.pools.threads:ThreadsPool",
    "thread": "celeriac.worker.pools.threads:ThreadsPool",
    "prefork": "celeriac.worker.pools.prefork:PreforkPool",
    "processes": "celeriac.worker.pools.prefork:PreforkPool",
}


def pool_class(name: str) -> type[Pool]:
    path = POOLS.get(name)
    if path is None:
        raise ImproperlyConfigured(f"Unknown pool {name!r} (choose from {', '.join(POOLS)})")
    cls: type[Pool] = symbol_by_name(path)
    return cls


def create_pool(name: str, app: Celery, limit: int, **kwargs: Any) -> Pool:
    return pool_class(name)(app, limit, **kwargs)
