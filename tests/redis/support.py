"""Reaching the test Redis: skip on a laptop without one, fail in CI (CI=true).

Where it is and which databases the tests may use come from the environment, with today's
defaults:

* ``CELERIAC_TEST_REDIS_HOST`` (127.0.0.1) and ``CELERIAC_TEST_REDIS_PORT`` (6379);
* ``CELERIAC_TEST_REDIS_DBS`` (``10-14``): five databases, as a range ``A-B`` or a comma
  list, given to :data:`BROKER_DB`, :data:`BACKEND_DB`, :data:`REDIS_BROKER_DB`,
  :data:`REDIS_BACKEND_DB` and :data:`SPARE_DB` in that order. Tests name databases only
  through these (or :func:`plain_url`), never by number.

Several test runs may share the server at once (a developer's run next to a full-suite run),
so instead of flushing a database every test works under a key prefix of its own
(``global_keyprefix``) and deletes its keys afterwards.
"""

from __future__ import annotations

import os
import uuid

import pytest


def parse_dbs(text: str) -> tuple[int, ...]:
    """``"10-14"`` or ``"3,4,5,6,7"`` -> five database numbers."""
    text = text.strip()
    if "-" in text and "," not in text:
        first, _, last = text.partition("-")
        dbs = tuple(range(int(first), int(last) + 1))
    else:
        dbs = tuple(int(part) for part in text.split(",") if part.strip())
    if len(dbs) < 5 or len(set(dbs)) != len(dbs) or min(dbs) < 0:
        raise ValueError(f"CELERIAC_TEST_REDIS_DBS={text!r}: name five distinct databases")
    return dbs


HOST = os.environ.get("CELERIAC_TEST_REDIS_HOST") or "127.0.0.1"
PORT = int(os.environ.get("CELERIAC_TEST_REDIS_PORT") or 6379)
#: every database the tests may touch
DBS = parse_dbs(os.environ.get("CELERIAC_TEST_REDIS_DBS") or "10-14")
BROKER_DB, BACKEND_DB, REDIS_BROKER_DB, REDIS_BACKEND_DB, SPARE_DB = DBS[:5]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_reachable: bool | None = None


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"


def redis_url(db: int, prefix: str | None = None) -> str:
    """URL of ``db`` on the test server with a fresh key prefix (or ``prefix``); skips (fails
    in CI) when there is no server."""
    assert db in DBS, f"tests use the Redis databases {DBS} only (CELERIAC_TEST_REDIS_DBS)"
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


def plain_url(db: int) -> str:
    """``redis://HOST:PORT/db`` without a key prefix (for tests that pick their own key)."""
    assert db in DBS, f"tests use the Redis databases {DBS} only (CELERIAC_TEST_REDIS_DBS)"
    return f"redis://{HOST}:{PORT}/{db}"


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
