"""Write-behind acks: an ack has left the process when ack() returns, its reply is read before
the broker's next operation, a connection lost with replies outstanding sends them again, and
a refused ack is logged (its message comes back once the lease lapses)."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from celeriac.brokers.postgres import PostgresBroker
from tests.brokers.conftest import envelope
from tests.postgres.support import schema_of, server_url

ROOT = Path(__file__).resolve().parents[2]

ACK_AND_DIE = textwrap.dedent(
    """
    import os, sys
    from celeriac.brokers.postgres import PostgresBroker

    broker = PostgresBroker(sys.argv[1], transport_options={"visibility_timeout": 1.0})
    held = broker.consume(["q"], 10, 5.0)
    broker.ack(held)
    os._exit(0)  # no flush, no close: killed by its next task, say
    """
)


def test_an_ack_has_left_the_process_when_ack_returns(pg_url: str,
                                                      broker: PostgresBroker) -> None:
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(3)])
    done = subprocess.run([sys.executable, "-c", ACK_AND_DIE, pg_url], timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 10
    while broker.queue_size("q") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert broker.queue_size("q") == 0
    time.sleep(1.2)  # past the dead consumer's lease: nothing comes back
    assert broker.consume(["q"], 10, 0.0) == []


def _terminate_ack_connection(url: str) -> int:
    with psycopg.connect(server_url(), autocommit=True) as admin:
        return len(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND query LIKE 'DELETE%%'", (schema_of(url),),
        ).fetchall())


def test_acks_outstanding_on_a_lost_connection_are_sent_again(pg_url: str) -> None:
    url = f"{pg_url}&application_name={schema_of(pg_url)}"
    broker = PostgresBroker(url)
    try:
        broker.publish_many([("q", envelope(f"t{i}")) for i in range(4)])
        held = broker.consume(["q"], 10, 5.0)
        broker.ack(held[:1])
        assert broker.queue_size("q") == 0
        assert _terminate_ack_connection(url) == 1
        broker.ack(held[1:3])  # written to a socket whose server end is gone
        broker.ack(held[3:])
        assert broker.queue_size("q") == 0  # read, found lost, sent again, done
        broker.requeue(held)  # none of them is there any more
        assert broker.consume(["q"], 10, 0.0) == []
    finally:
        broker.close()


def test_a_refused_ack_is_logged_and_the_rest_go_on(
    broker: PostgresBroker, caplog: pytest.LogCaptureFixture
) -> None:
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(2)])
    first, second = broker.consume(["q"], 10, 5.0)
    with caplog.at_level(logging.WARNING, logger="celeriac.postgres"):
        broker.ack([dataclasses.replace(first, tag="not-an-id")])
        broker.ack([second])
        assert broker.queue_size("q") == 0  # flushed: the second ack went through
    assert any("refused a write-behind ack" in r.getMessage() for r in caplog.records)
    broker.requeue([first])
    assert [d.task_id for d in broker.consume(["q"], 10, 5.0)] == ["t0"]


def test_a_forked_child_does_not_inherit_outstanding_acks(broker: PostgresBroker) -> None:
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(2)])
    held = broker.consume(["q"], 10, 5.0)
    broker.ack(held[:1])
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            broker.queue_size("q")  # flushes nothing of the parent's; its own connection
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    broker.ack(held[1:])
    assert broker.queue_size("q") == 0
