"""Reaching the test Redis: skip on a laptop without one, fail in CI (CI=true).

Tests use databases 10-14 only. Several test runs may share the server at once (a developer's
run next to a full-suite run), so instead of flushing a database every test works under a key
prefix of its own (``global_keyprefix``) and deletes its keys afterwards.
"""

from __future__ import annotations

import os
import uuid

import pytest

HOST, PORT = "127.0.0.1", 6379
BROKER_DB, BACKEND_DB, REDIS_BROKER_DB, REDIS_BACKEND_DB = 10, 11, 12, 13
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_reachable: bool | None = None


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"


def redis_url(db: int, prefix: str | None = None) -> str:
    """URL of ``db`` on the test server with a fresh key prefix (or ``prefix``); skips (fails
    in CI) when there is no server."""
    assert 10 <= db <= 14, "tests use Redis databases 10-14 only"
    global _reachable
    import redis

    if _reachable is None:
        client = redis.Redis(host=HOST, port=PORT, db=db, socket_connect_timeout=1)
        try:
            client.ping()
            _reachable = True
        except redis.ConnectionError:
            _reachable = False
        finally:
            client.close()
    if not _reachable:
        _unavailable(f"no Redis server on {HOST}:{PORT}")
    return f"redis://{HOST}:{PORT}/{db}?global_keyprefix={prefix or unique_prefix()}"


def drop_keys(url: str) -> None:
    """Delete every key under the URL's prefix."""
    import redis

    base, _, query = url.partition("?global_keyprefix=")
    assert query, "not a test URL"
    client = redis.Redis.from_url(base)
    try:
        keys = list(client.scan_iter(match=f"{query}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"Redis is required in CI: {reason}")
    pytest.skip(reason)
