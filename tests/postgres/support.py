"""Reaching the test PostgreSQL: skip on a laptop without one, fail in CI (CI=true).

The server comes from CELERIAC_TEST_POSTGRES_URL (default
``postgresql://postgres@127.0.0.1:5432/test``). Several test runs may share the server at once,
so every test works in a schema of its own (``?schema=test_<random>``, which the library creates
on first use) and drops it afterwards (:func:`drop_schema`).
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pytest

if TYPE_CHECKING:
    import psycopg

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"

_reachable: bool | None = None


def server_url() -> str:
    """The test server's URL, without a schema."""
    return os.environ.get("CELERIAC_TEST_POSTGRES_URL") or DEFAULT_URL


def unique_schema() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


def postgres_url(schema: str | None = None) -> str:
    """The test server's URL with a fresh schema (or ``schema``); skips (fails in CI) when
    there is no server."""
    global _reachable
    import psycopg

    base = server_url()
    if _reachable is None:
        try:
            psycopg.connect(base, connect_timeout=2).close()
            _reachable = True
        except psycopg.Error:
            _reachable = False
    if not _reachable:
        _unavailable(f"no PostgreSQL server at {base}")
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema={schema or unique_schema()}"


def schema_of(url: str) -> str:
    schema = dict(parse_qsl(urlsplit(url).query)).get("schema")
    assert schema and schema.startswith("test_"), "not a test URL"
    return schema


def connect(url: str) -> psycopg.Connection[Any]:
    """A plain autocommit psycopg connection to the test server, its search_path on the
    URL's schema (for writing rows straight into the tables)."""
    import psycopg

    conn = psycopg.connect(server_url(), autocommit=True)
    conn.execute(f"SET search_path TO {schema_of(url)}")
    return conn


def drop_schema(url: str) -> None:
    """Drop the URL's test schema with everything in it."""
    import psycopg

    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema_of(url)}" CASCADE')


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(reason)
