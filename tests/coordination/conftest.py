"""Fixtures of the coordination store contract suite: one ``store`` per built-in store."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celeriac.coordination import CoordinationStore, create_store
from celeriac.coordination import memory as memory_store
from tests.postgres.support import drop_schema, postgres_url
from tests.redis.support import BROKER_DB, drop_keys, redis_url

STORE_KINDS = ["memory", "sqlite", "redis", "postgresql"]

StoreFactory = Callable[[], CoordinationStore]


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def store_url(store_kind: str, tmp_path: Path) -> Iterator[str]:
    if store_kind == "memory":
        url = f"memory://test-{uuid.uuid4().hex}"
    elif store_kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'coordination.db'}"
    elif store_kind == "postgresql":
        url = postgres_url()
    else:
        url = redis_url(BROKER_DB)
    yield url
    if store_kind == "memory":
        memory_store.reset(url)
    if store_kind == "redis":
        drop_keys(url)
    if store_kind == "postgresql":
        drop_schema(url)


@pytest.fixture
def make_store(store_url: str) -> Iterator[StoreFactory]:
    """Stores on the suite's URL (so they share state)."""
    made: list[CoordinationStore] = []

    def make() -> CoordinationStore:
        store = create_store(store_url)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> CoordinationStore:
    return make_store()
