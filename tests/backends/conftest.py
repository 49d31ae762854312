"""Fixtures of the result backend contract suite: one ``backend`` per implementation.

A later backend joins the suite by adding its name to ``BACKEND_KINDS`` and a branch to
``_url_for`` (skipping when its service is not reachable).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.backends import ResultBackend, create_backend
from celeriac.backends import memory as memory_backend
from tests.redis.support import BACKEND_DB, drop_keys, redis_url

# Tests that do not apply to a kind, with the reason (the contract allows the difference).
NOT_APPLICABLE = {
    ("redis", "test_cleanup_counts_expired_records"): (
        "Redis expires records natively; cleanup() returns 0 as ResultBackend.cleanup allows"
    ),
    ("memcached", "test_cleanup_counts_expired_records"): (
        "memcached expires records natively; cleanup() returns 0 as ResultBackend.cleanup allows"
    ),
    ("memcached", "test_incr_counter_expiry"): (
        "memcached expires in whole seconds (0.2 s becomes 1 s); tests/memcached checks a "
        "counter's expiry at that resolution"
    ),
}

BACKEND_KINDS = [
    "memory", "sqlite", "redis", "postgresql", "mysql", "sqlalchemy-sqlite", "memcached",
]
#: kinds served by the SQLAlchemy backend (db+...) -> the database tests/sql/support.py makes
SQL_KINDS = {"postgresql": "postgresql", "mysql": "mysql", "sqlalchemy-sqlite": "sqlite"}

BackendFactory = Callable[..., ResultBackend]


def _url_for(kind: str, tmp_path: Path) -> str:
    if kind == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    if kind == "redis":
        return redis_url(BACKEND_DB)
    if kind == "memcached":
        from tests.memcached.support import memcached_url

        return memcached_url()
    raise AssertionError(f"unknown backend kind {kind}")


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def backend_url(
    backend_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    reason = NOT_APPLICABLE.get((backend_kind, getattr(request.node, "originalname", "")))
    if reason:
        pytest.skip(reason)
    if backend_kind in SQL_KINDS:
        from tests.sql.support import isolated_url

        with isolated_url(SQL_KINDS[backend_kind], tmp_path) as url:
            yield url
        return
    url = _url_for(backend_kind, tmp_path)
    yield url
    if backend_kind == "memory":
        memory_backend.reset(url)
    if backend_kind == "redis":
        drop_keys(url)
    if backend_kind == "memcached":
        from tests.memcached.support import drop_keys as drop_memcached_keys

        drop_memcached_keys(url)


@pytest.fixture
def make_backend(backend_url: str) -> Iterator[BackendFactory]:
    """Backends on the suite's URL, so they share records."""
    made: list[ResultBackend] = []

    def make(**options: Any) -> ResultBackend:
        backend = create_backend(backend_url, options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make_backend: BackendFactory) -> ResultBackend:
    return make_backend()
