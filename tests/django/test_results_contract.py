"""The result backend contract (tests/backends/test_contract.py) over ``django-db`` on SQLite and
PostgreSQL, and over ``django-cache`` on a local-memory cache and on Django's Redis cache.

The contract's tests are collected here a second time with this module's fixtures. They run as
transactional Django tests: the contract's threads use connections of their own, so records must
be committed to be seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac.backends import ResultBackend, create_backend
from tests.backends import test_contract
from tests.redis.support import BACKEND_DB, drop_keys, redis_url, unique_prefix

BackendFactory = Callable[..., ResultBackend]

URLS = {
    "django-db-sqlite": "django-db",  # the "default" alias: SQLite in tests/django/settings.py
    "django-db-postgres": "django-db://postgres",
    "django-cache-locmem": "django-cache",
    "django-cache-redis": "django-cache://redis",  # Django's RedisCache on the test Redis
}

# Tests that do not apply to a kind, with the reason (the contract allows the difference).
NOT_APPLICABLE = {
    **{
        (kind, "test_cleanup_counts_expired_records"): (
            "Django's caches expire records themselves; cleanup() returns 0 as the contract allows"
        )
        for kind in ("django-cache-locmem", "django-cache-redis")
    },
    **{
        (kind, "test_incr_counter_expiry"): (
            "django-cache rounds lifetimes up to whole seconds (redis/memcached caches drop the "
            "fraction, which would delete at once); the test's counter lives 0.2 s"
        )
        for kind in ("django-cache-locmem", "django-cache-redis")
    },
}

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "postgres"])

globals().update(
    {name: fn for name, fn in vars(test_contract).items() if name.startswith("test_")}
)


@pytest.fixture(autouse=True)
def close_thread_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract's threads reach the database (and cache) through Django, which opens one per
    thread and leaves it open; close it when each thread ends (a worker's thread pool does the
    same through the Django middleware), or the test database could not be dropped."""
    from django.core.cache import caches
    from django.db import connections

    for cls in (threading.Thread, threading.Timer):
        def run(self: threading.Thread, _run: Callable[[threading.Thread], None] = cls.run) -> None:
            try:
                _run(self)
            finally:
                connections.close_all()
                caches.close_all()

        monkeypatch.setattr(cls, "run", run)


@pytest.fixture(params=sorted(URLS))
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    reason = NOT_APPLICABLE.get((kind, getattr(request.node, "originalname", "")))
    if reason:
        pytest.skip(reason)
    return kind


@pytest.fixture
def make_backend(backend_kind: str, settings: Any) -> Iterator[BackendFactory]:
    made: list[ResultBackend] = []
    redis_prefix = None
    if backend_kind == "django-cache-redis":
        redis_prefix = unique_prefix()
        url = redis_url(BACKEND_DB, redis_prefix)
        settings.CACHES = {
            **settings.CACHES,
            "redis": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url.partition("?")[0],
                # Django's keys are "<KEY_PREFIX>:<version>:<key>": under the test's prefix.
                "KEY_PREFIX": redis_prefix.rstrip(":"),
            },
        }

    def make(**options: Any) -> ResultBackend:
        backend = create_backend(URLS[backend_kind], options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
    if backend_kind == "django-cache-locmem":
        from django.core.cache import cache

        cache.clear()
    if redis_prefix is not None:
        from django.core.cache import caches

        caches["redis"].close()
        drop_keys(redis_url(BACKEND_DB, redis_prefix))


@pytest.fixture
def backend(make_backend: BackendFactory) -> ResultBackend:
    return make_backend()
