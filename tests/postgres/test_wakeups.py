"""LISTEN/NOTIFY: an idle consumer claims once and then sleeps on its notification socket until
a publish (from any process), a due eta, a lapsing lease or its timeout; broadcasts of any size
and content arrive whole."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac.brokers.postgres import NOTIFY_MAX_BYTES, PostgresBroker
from tests.brokers.conftest import envelope
from tests.postgres.conftest import BrokerFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When each claim statement ran (in this process)."""
    seen: list[float] = []
    original = PostgresBroker._claim

    def counting(self: PostgresBroker, *args: Any) -> Any:
        seen.append(time.monotonic())
        return original(self, *args)

    monkeypatch.setattr(PostgresBroker, "_claim", counting)
    return seen


def test_an_idle_consumer_claims_once_and_sleeps(broker: PostgresBroker,
                                                 claims: list[float]) -> None:
    broker.publish("other", envelope("not-for-us"))
    assert broker.consume(["q"], 10, 1.0) == []
    # A notification for another queue's channel never reaches this listener.
    assert len(claims) == 1


PUBLISHER = textwrap.dedent(
    """
    import sys, time
    from celeriac.brokers.postgres import PostgresBroker
    from celeriac.message import Envelope

    broker = PostgresBroker(sys.argv[1])
    broker.queue_size("q")
    print("ready", flush=True)
    sys.stdin.readline()
    broker.publish("q", Envelope(b"[[], {}, {}]", {"id": "remote", "task": "t"}))
    broker.close()
    """
)


def test_a_publish_from_another_process_wakes_a_waiting_consumer(
    pg_url: str, broker: PostgresBroker, claims: list[float]
) -> None:
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER, pg_url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        timer = threading.Timer(0.3, lambda: (proc.stdin.write("go\n"), proc.stdin.flush()))
        timer.start()
        started = time.monotonic()
        got = broker.consume(["q"], 10, 30.0)
        timer.join()
    finally:
        proc.communicate(timeout=30)
    assert [d.task_id for d in got] == ["remote"]
    assert time.monotonic() - started < 30  # woken, not timed out
    assert len(claims) == 2  # the first, empty, and the one the notification asked for


def test_a_due_eta_wakes_the_consumer_without_a_notification(
    broker: PostgresBroker, claims: list[float]
) -> None:
    later = envelope("later", eta_in_s=0.5)
    due = later.eta_timestamp()
    assert due is not None
    broker.publish("q", later)
    got = broker.consume(["q"], 10, 30.0)
    assert [d.task_id for d in got] == ["later"] and time.time() >= due
    assert len(claims) <= 3  # slept until due, not polling


def test_a_lapsing_lease_wakes_the_consumer(make_broker: BrokerFactory,
                                           claims: list[float]) -> None:
    holder, waiter = make_broker(visibility_timeout=0.5), make_broker()
    holder.publish("q", envelope("t"))
    assert len(holder.consume(["q"], 1, 5.0)) == 1
    got = waiter.consume(["q"], 10, 30.0)
    assert [d.task_id for d in got] == ["t"] and got[0].redelivered
    assert len(claims) <= 4


@pytest.mark.parametrize(
    "payload",
    [b"plain text", b"\x00\xff binary \x80", "unicodé ✓".encode(), b"x" * (NOTIFY_MAX_BYTES + 1),
     bytes(range(256)) * 100, b""],
    ids=["text", "binary", "utf8", "just-too-large", "large-binary", "empty"],
)
def test_broadcasts_arrive_whole(make_broker: BrokerFactory, payload: bytes) -> None:
    sender, listener = make_broker(), make_broker()
    with listener.subscribe("ch") as subscription:
        sender.broadcast("ch", payload)
        sender.broadcast("ch", b"after")
        got: list[bytes] = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            got += subscription.get(1.0)
    assert got == [payload, b"after"]


def test_channels_of_two_schemas_are_apart(make_broker: BrokerFactory) -> None:
    from tests.postgres.support import drop_schema, postgres_url

    other_url = postgres_url()
    other = PostgresBroker(other_url)
    try:
        with make_broker().subscribe("ch") as subscription:
            other.broadcast("ch", b"elsewhere")
            assert subscription.get(0.3) == []
    finally:
        other.close()
        drop_schema(other_url)


def test_a_due_message_is_promoted_under_a_backlog(broker: PostgresBroker) -> None:
    """Claims that always come back full still let a due eta in (the promotion step runs at
    least every PROMOTE_EVERY_S)."""
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(5000)])
    broker.publish("q", envelope("urgent", priority=9, eta_in_s=0.2))
    seen: list[str] = []
    while "urgent" not in seen:
        batch = broker.consume(["q"], 2, 5.0)
        assert batch, "the backlog ran dry before the due message came"
        assert len(batch) == 2 or "urgent" in [d.task_id for d in batch]
        seen += [d.task_id for d in batch]
        broker.ack(batch)
    assert len(seen) < 5001


@pytest.mark.parametrize("durable", [True, False])
def test_durable_acks_either_way(make_broker: BrokerFactory, durable: bool) -> None:
    broker = make_broker(durable_acks=durable)
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(3)])
    got = broker.consume(["q"], 10, 5.0)
    broker.renew(got)
    broker.requeue(got[:1])
    broker.ack(got[1:])
    assert [d.task_id for d in broker.consume(["q"], 10, 5.0)] == ["t0"]
    assert broker.queue_size("q") == 0


def test_notifications_we_did_not_send_are_dropped(pg_url: str, broker: PostgresBroker) -> None:
    from celeriac._postgres.conn import channel
    from tests.postgres.support import connect

    name = channel(broker.params.namespace, "broadcast:ch")
    with broker.subscribe("ch") as subscription, connect(pg_url) as db:
        for junk in ("", "x", "b!!!not base64", "r", "r12a", "r99999999999999999999", "r42",
                     "b" + "A" * 7):
            db.execute("SELECT pg_notify(%s, %s)", (name, junk))
        broker.broadcast("ch", b"real")
        got: list[bytes] = []
        deadline = time.monotonic() + 5
        while b"real" not in got and time.monotonic() < deadline:
            got += subscription.get(0.5)
    assert got == [b"real"]
