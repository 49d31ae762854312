"""Fixtures of the ``db+`` result backend tests: an isolated URL per database kind and a raw
SQLAlchemy engine on the same place, to write straight into the tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from celeriac.backends import create_backend
from celeriac.backends.sql import SQLBackend
from celeriac.backends.sql.schema import sqlalchemy_url
from tests.sql.support import isolated_url

KINDS = ["postgresql", "mysql", "sqlite"]

MakeBackend = Callable[..., SQLBackend]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def url(kind: str, tmp_path: Path) -> Iterator[str]:
    with isolated_url(kind, tmp_path) as made:
        yield made


@pytest.fixture
def make_backend(url: str) -> Iterator[MakeBackend]:
    made: list[SQLBackend] = []

    def make(**options: Any) -> SQLBackend:
        backend = create_backend(url, options)
        assert isinstance(backend, SQLBackend)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def raw(url: str) -> Iterator[sa.Engine]:
    """An engine of its own on the backend's database, outside the backend."""
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()
