"""Reaching the test RabbitMQ for the rpc:// tests: skip on a laptop without one, fail in CI
(CI=true). The server is CELERIAC_TEST_AMQP_URL (default: the loopback guest account, vhost /).

Each test's reply queues are uuid-named and exclusive to the test's own connection, so test
runs sharing the server never see each other's results, and nothing outlives a test.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

AMQP_URL = os.environ.get("CELERIAC_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_reachable: bool | None = None


def amqp_url() -> str:
    """The test server's URL; skips (fails in CI) when there is no server."""
    global _reachable
    if _reachable is None:
        try:
            raw_connection().close()
            _reachable = True
        except Exception:
            _reachable = False
    if not _reachable:
        reason = f"no RabbitMQ at {AMQP_URL}"
        if IN_CI:
            pytest.fail(f"RabbitMQ is required in CI: {reason}")
        pytest.skip(reason)
    return AMQP_URL


def raw_connection() -> Any:
    """A py-amqp connection of the test's own, beside celeriac's (for hostile publishes)."""
    from celeriac._amqp.connection import open_connection, parse_url

    return open_connection(parse_url(AMQP_URL), connect_timeout_s=2.0)


def raw_publish(queue: str, body: bytes, **properties: Any) -> None:
    """Publish ``body`` straight into ``queue`` (default exchange) with ``properties``."""
    import amqp

    conn = raw_connection()
    try:
        channel = conn.channel()
        channel.basic_publish(amqp.Message(body, **properties), exchange="", routing_key=queue)
    finally:
        conn.close()


def queue_exists(name: str) -> bool:
    """Whether queue ``name`` exists on the server (a passive declare)."""
    import amqp.exceptions

    conn = raw_connection()
    try:
        conn.channel().queue_declare(name, passive=True)
        return True
    except amqp.exceptions.ResourceLocked:  # exclusive to another connection: it exists
        return True
    except amqp.exceptions.NotFound:
        return False
    finally:
        try:
            conn.close()
        except Exception:
            pass
