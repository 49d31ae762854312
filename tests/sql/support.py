"""Reaching the test databases for the ``db+`` result backend: skip on a laptop without them,
fail in CI (CI=true).

Locations: CELERIAC_TEST_POSTGRES_URL (default ``postgresql://postgres@127.0.0.1:5432/test``),
CELERIAC_TEST_MYSQL_URL (default ``mysql://root@127.0.0.1:3306/test``). Several test runs share
the servers at once, so each test works in a place of its own that it drops afterwards: a
PostgreSQL schema (``search_path`` set through the URL's ``options``) or a MariaDB database.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
POSTGRES_URL = os.environ.get(
    "CELERIAC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("CELERIAC_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

_reachable: dict[str, str | None] = {}


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def unique_name() -> str:
    return f"celeriac_test_{uuid.uuid4().hex[:12]}"


def admin_engine(kind: str):  # type: ignore[no-untyped-def]
    """A SQLAlchemy engine on the test server of ``kind`` (postgresql, mysql), outside any
    test's place; skips (fails in CI) when the server does not answer."""
    import sqlalchemy as sa

    url = POSTGRES_URL if kind == "postgresql" else MYSQL_URL
    scheme, rest = url.split("://", 1)
    driver = "postgresql+psycopg" if kind == "postgresql" else "mysql+pymysql"
    engine = sa.create_engine(f"{driver}://{rest}", poolclass=sa.pool.NullPool)
    if kind not in _reachable:
        try:
            with engine.connect():
                _reachable[kind] = None
        except sa.exc.OperationalError as exc:
            _reachable[kind] = str(exc).splitlines()[0]
    if _reachable[kind] is not None:
        _unavailable(f"no {kind} server at {scheme}://{rest}: {_reachable[kind]}")
    return engine


@contextmanager
def isolated_url(kind: str, root: Path | None = None) -> Iterator[str]:
    """A ``db+`` URL of ``kind`` (postgresql, mysql, sqlite) in a fresh schema/database/file,
    removed on exit."""
    import sqlalchemy as sa

    name = unique_name()
    if kind == "sqlite":
        assert root is not None, "sqlite needs a directory"
        yield f"db+sqlite:///{root / (name + '.db')}"
        return
    engine = admin_engine(kind)
    base = POSTGRES_URL if kind == "postgresql" else MYSQL_URL
    rest = base.split("://", 1)[1]
    try:
        if kind == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            options = urllib.parse.quote(f"-csearch_path={name}")
            sep = "&" if "?" in rest else "?"
            yield f"db+postgresql://{rest}{sep}options={options}"
        else:
            with engine.begin() as conn:
                conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
            server, _, _db = rest.rpartition("/")
            yield f"db+mysql://{server}/{name}"
    finally:
        with engine.begin() as conn:
            if kind == "postgresql":
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()
