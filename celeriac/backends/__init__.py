"""Result backends by URL scheme. Implementations are imported only when a URL asks for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac._utils.imports import symbol_by_name
from celeriac.backends.base import ResultBackend
from celeriac.exceptions import ImproperlyConfigured

BACKENDS: dict[str, str] = {
    "memory": "celeriac.backends.memory:MemoryBackend",
    "cache+memory": "celeriac.backends.memory:MemoryBackend",
    "sqlite": "celeriac.backends.sqlite:SQLiteBackend",
    "db+sqlite": "celeriac.backends.sqlite:SQLiteBackend",
    "redis": "celeriac.backends.redis:RedisBackend",
    "rediss": "celeriac.backends.redis:RedisBackend",
    "redis+socket": "celeriac.backends.redis:RedisBackend",
    "unix": "celeriac.backends.redis:RedisBackend",
    "sentinel": "celeriac.backends.redis:RedisBackend",
    "db+postgresql": "celeriac.backends.sql:SQLBackend",
    "db+postgres": "celeriac.backends.sql:SQLBackend",
    "db+mysql": "celeriac.backends.sql:SQLBackend",
    "django-db": "celeriac.contrib.django.backend:DjangoBackend",
}


def scheme_of(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else url.lower()


def backend_class(url: str) -> type[ResultBackend]:
    scheme = scheme_of(url)
    path = BACKENDS.get(scheme)
    if path is None:
        raise ImproperlyConfigured(
            f"No result backend for URL scheme {scheme!r} (known: {', '.join(sorted(BACKENDS))})"
        )
    try:
        cls: type[ResultBackend] = symbol_by_name(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"The {scheme!r} result backend needs an optional dependency: {exc}"
        ) from exc
    return cls


def create_backend(url: str, options: Mapping[str, Any] | None = None) -> ResultBackend:
    return backend_class(url)(url, options=options)


__all__ = ["BACKENDS", "ResultBackend", "backend_class", "create_backend", "scheme_of"]
