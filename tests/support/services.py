"""The one place that makes an isolated test URL per broker kind and per result-backend kind,
and cleans it up afterwards.

Each kind delegates to its service's own support module (``tests/redis/support.py``,
``tests/amqp/support.py``, ``tests/postgres/support.py``, ``tests/sql/support.py``), which
knows how to reach the service (skipping on a laptop without it, failing when CI=true) and how
to keep concurrent test runs apart. A kind whose support module (or product module) has not
landed yet skips with "not implemented yet".

Rules: a URL made here is used by one test (or one module-scoped fixture) only; the context
manager removes everything stored under it on exit, whether the test passed or not.
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest

BROKER_KINDS = ("memory", "sqlite", "redis", "amqp", "postgresql")
BACKEND_KINDS = ("memory", "sqlite", "redis", "postgresql", "rpc")
#: kinds whose storage lives in one process: a worker process cannot share them
IN_PROCESS_KINDS = frozenset({"memory"})


def not_implemented(what: str) -> None:
    """Skip: ``what`` has not landed yet (the lead checks at the end that none skips so)."""
    pytest.skip(f"not implemented yet: {what}")


def _support(module: str, product: str) -> ModuleType:
    """The support module ``module`` once it and ``product`` (the celeriac module it tests)
    can be imported; else skip as not implemented yet."""
    for name in (product, module):
        try:
            importlib.import_module(name)
        except ImportError:
            not_implemented(name)
    return importlib.import_module(module)


@contextmanager
def _redis(database: str) -> Iterator[str]:
    """A URL of the test Redis database named ``database`` in tests/redis/support.py under a
    fresh key prefix; every key under it is deleted on exit."""
    from tests.redis import support as redis_support

    url = redis_support.redis_url(getattr(redis_support, database))
    try:
        yield url
    finally:
        redis_support.drop_keys(url)


@contextmanager
def _amqp_vhost() -> Iterator[str]:
    """The test RabbitMQ in a virtual host of its own, deleted on exit (made with
    ``rabbitmqctl``); where that cannot be done (a server named by CELERIAC_TEST_AMQP_URL,
    no rabbitmqctl here), the test run's vhost (tests/amqp/support.py)."""
    amqp = _support("tests.amqp.support", "celeriac.brokers.amqp")
    base: str = amqp.amqp_url()
    vhost = f"celeriac-pair-{uuid.uuid4().hex[:10]}"
    if os.environ.get("CELERIAC_TEST_AMQP_URL") or amqp.rabbitmqctl("add_vhost", vhost) is None:
        yield base
        return
    try:
        user = urlsplit(base).username or "guest"
        amqp.rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield amqp.with_vhost(base, vhost)
    finally:
        amqp.rabbitmqctl("delete_vhost", vhost)


@contextmanager
def broker_url(kind: str, root: Path) -> Iterator[str]:
    """An isolated broker URL of ``kind``; ``root`` is a private directory (SQLite files)."""
    if kind == "memory":
        from celeriac.brokers import memory
        from celeriac.coordination import memory as memory_store

        url = f"memory://test-{uuid.uuid4().hex}"
        try:
            yield url
        finally:
            memory.reset(url)
            memory_store.reset(url)
    elif kind == "sqlite":
        yield f"sqlite:///{root / f'broker-{uuid.uuid4().hex[:8]}.db'}"
    elif kind == "redis":
        with _redis("BROKER_DB") as url:
            yield url
    elif kind == "amqp":
        with _amqp_vhost() as url:
            yield url
    elif kind == "postgresql":
        postgres = _support("tests.postgres.support", "celeriac.brokers.postgres")
        url = postgres.postgres_url()
        try:
            yield url
        finally:
            postgres.drop_schema(url)
    else:
        raise AssertionError(f"unknown broker kind {kind!r}")


def backend_beside(kind: str, url: str, root: Path) -> str:
    """The result backend of a suite that only cares about its broker ``url`` of ``kind``:
    the same URL where it names a backend too (memory, SQLite, Redis keep results beside the
    messages), else an SQLite file in ``root``."""
    if kind in {"memory", "sqlite", "redis"}:
        return url
    return f"sqlite:///{root / f'results-{uuid.uuid4().hex[:8]}.db'}"


@contextmanager
def backend_url(kind: str, root: Path, broker: str | None = None) -> Iterator[str]:
    """An isolated result-backend URL of ``kind``. ``rpc`` answers over the broker, so it
    needs an AMQP ``broker`` URL (it stores nothing of its own to clean)."""
    if kind == "memory":
        from celeriac.backends import memory

        url = f"memory://results-{uuid.uuid4().hex}"
        try:
            yield url
        finally:
            memory.reset(url)
    elif kind == "sqlite":
        yield f"sqlite:///{root / f'results-{uuid.uuid4().hex[:8]}.db'}"
    elif kind == "redis":
        with _redis("BACKEND_DB") as url:
            yield url
    elif kind == "postgresql":
        sql = _support("tests.sql.support", "celeriac.backends.sql")
        with sql.isolated_url("postgresql") as url:
            yield url
    elif kind == "rpc":
        _support("celeriac.backends.rpc", "celeriac.backends.rpc")
        assert broker is not None and broker.split(":", 1)[0] in {"amqp", "pyamqp", "amqps"}, \
            "rpc:// answers over an AMQP broker"
        yield "rpc://"
    else:
        raise AssertionError(f"unknown backend kind {kind!r}")
