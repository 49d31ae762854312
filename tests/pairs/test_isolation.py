"""The URLs tests.support.services makes are private to their user and leave nothing behind:
two URLs of one kind never share a message, and once the context ends what was written under
a URL is gone from the server (keys, schema, vhost)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from celeriac.brokers import create_broker
from celeriac.message import Envelope
from tests.support.services import broker_url

KINDS = ["memory", "sqlite", "redis", "amqp", "postgresql"]


def _envelope(task_id: str) -> Envelope:
    return Envelope(body=b"[[], {}, {}]", headers={"id": task_id, "task": "t.noop"},
                    properties={})


def _left_behind(kind: str, url: str) -> bool:
    """Whether the server still holds anything under ``url``."""
    if kind == "redis":
        import redis

        base, _, prefix = url.partition("?global_keyprefix=")
        client = redis.Redis.from_url(base)
        try:
            return bool(list(client.scan_iter(match=f"{prefix}*", count=1000)))
        finally:
            client.close()
    if kind == "postgresql":
        import psycopg

        from tests.postgres.support import schema_of, server_url

        with psycopg.connect(server_url(), autocommit=True) as conn:
            row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                               (schema_of(url),)).fetchone()
        return row is not None
    if kind == "amqp":
        vhost = url.rsplit("/", 1)[1]
        listed = subprocess.run(["rabbitmqctl", "list_vhosts", "-q"], capture_output=True,
                                text=True, timeout=60, check=True).stdout.split()
        return vhost in listed
    return False


@pytest.mark.parametrize("kind", KINDS)
def test_two_urls_of_a_kind_share_nothing_and_leave_nothing(kind: str, tmp_path: Path) -> None:
    with broker_url(kind, tmp_path) as first, broker_url(kind, tmp_path) as second:
        assert first != second
        one, other = create_broker(first, {}), create_broker(second, {})
        try:
            one.publish("celery", _envelope("in-first"))
            other.publish("celery", _envelope("in-second"))
            got = other.consume(["celery"], 10, 5.0)
            assert [d.task_id for d in got] == ["in-second"]
            other.ack(got)
            if kind in {"redis", "postgresql", "amqp"}:
                assert _left_behind(kind, first), "the probe sees nothing: it proves nothing"
        finally:
            one.close()
            other.close()
    assert not _left_behind(kind, first)
    assert not _left_behind(kind, second)
