"""The PostgreSQL broker against what the database may hold or do to it: rows written by hand,
a connection killed in the middle of a claim, a consumer that dies holding messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from celeriac.brokers.postgres import PostgresBroker
from celeriac.exceptions import TransportError
from celeriac.message import Delivery
from tests.brokers.conftest import envelope
from tests.postgres.conftest import BrokerFactory
from tests.postgres.support import connect, schema_of, server_url

ROOT = Path(__file__).resolve().parents[2]


def _insert(url: str, *rows: tuple[Any, ...]) -> None:
    with connect(url) as db:
        db.cursor().executemany(
            "INSERT INTO celeriac_messages (queue, priority, headers, properties, body,"
            " content_type, content_encoding) VALUES ('q', %s, %s, %s, %s, %s, %s)",
            rows,
        )


def test_bad_rows_become_malformed_deliveries(pg_url: str, broker: PostgresBroker) -> None:
    broker.publish("q", envelope("good-1"))
    _insert(
        pg_url,
        (5, b"not json", b"{}", b"[[], {}, {}]", "application/json", "utf-8"),
        (4, b'["a list"]', b"{}", b"[[], {}, {}]", "application/json", "utf-8"),
        (3, b'{"id": "props-bad", "task": "t"}', b"\xff\xfe", b"x", "application/json", "utf-8"),
        (-7, b'{"id": "negative", "task": "t"}', b"{}", b"[[], {}, {}]", "application/json",
         "utf-8"),
    )
    broker.publish("q", envelope("good-2"))
    got = broker.consume(["q"], 10, 5.0)
    assert len(got) == 6
    good = [d.task_id for d in got if d.malformed is None]
    assert good == ["good-1", "good-2", "negative"]  # priority -7 sorts after 0
    bad = [d for d in got if d.malformed is not None]
    assert len(bad) == 3 and all(d.malformed for d in bad)
    broker.ack(got)
    assert broker.queue_size("q") == 0


def test_rows_scheduled_by_hand_with_odd_times(pg_url: str, broker: PostgresBroker) -> None:
    broker.publish("q", envelope("fine"))
    with connect(pg_url) as db:
        db.execute(
            "INSERT INTO celeriac_messages (queue, eta, lease_until, owner, headers, properties,"
            " body, content_type, content_encoding) VALUES"
            " ('q', 'NaN', NULL, NULL, '\\x7b7d', '\\x7b7d', '\\x', 'a', 'b'),"
            " ('q', '-Infinity', NULL, NULL, '\\x7b7d', '\\x7b7d', '\\x', 'a', 'b'),"
            " ('q', NULL, 'Infinity', 'someone', '\\x7b7d', '\\x7b7d', '\\x', 'a', 'b'),"
            " ('q', NULL, 'NaN', 'gone', '\\x7b7d', '\\x7b7d', '\\x', 'a', 'b')"
        )
    got = broker.consume(["q"], 10, 2.0)
    # -Infinity is long past due; NaN is no time at all, so it holds nothing back (PostgreSQL
    # sorts it above every number: compared as a time it would never fall due nor lapse, and
    # its row would sit in the queue for good, never delivered nor dead-lettered); a lease
    # until Infinity is held for good. None of them breaks the claim.
    assert sorted(d.task_id for d in got) == ["", "", "", "fine"]
    assert broker.consume(["q"], 10, 0.2) == []
    broker.ack(got)
    assert broker.queue_size("q") == 0


def test_a_row_at_the_delivery_count_limit_never_blocks_a_claim(
    pg_url: str, broker: PostgresBroker
) -> None:
    # A claim adds one to delivery_count: from the column's limit that overflowed and failed
    # the whole claim, every time, so no worker took anything from the queue any more.
    broker.publish("q", envelope("before"))
    with connect(pg_url) as db:
        db.execute(
            "INSERT INTO celeriac_messages (queue, delivery_count, headers, properties, body,"
            " content_type, content_encoding) VALUES ('q', 2147483647, %s, '{}', %s,"
            " 'application/json', 'utf-8')",
            (b'{"id": "at-limit", "task": "t"}', b"[[], {}, {}]"),
        )
    broker.publish("q", envelope("after"))
    got = broker.consume(["q"], 10, 5.0)
    assert [d.task_id for d in got] == ["before", "at-limit", "after"]
    limit = next(d for d in got if d.task_id == "at-limit")
    assert limit.redelivered and limit.delivery_count == 2147483647
    broker.requeue(got)
    again = broker.consume(["q"], 10, 5.0)  # claimed again at the limit: still one claim
    assert len(again) == 3
    broker.ack(again)
    assert broker.queue_size("q") == 0


def test_a_connection_killed_mid_claim_loses_nothing(pg_url: str) -> None:
    # application_name marks this test's connections, so only they are ever killed
    broker = PostgresBroker(f"{pg_url}&application_name={schema_of(pg_url)}")
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(5)])
    results: list[list[Delivery] | BaseException] = []
    blocker = connect(pg_url)
    try:
        # Hold the table so the claim blocks inside its transaction, then kill its backend.
        blocker.execute("BEGIN; LOCK TABLE celeriac_messages IN ACCESS EXCLUSIVE MODE")

        def claim() -> None:
            try:
                results.append(broker.consume(["q"], 10, 5.0))
            except TransportError as exc:
                results.append(exc)

        thread = threading.Thread(target=claim)
        thread.start()
        with psycopg.connect(server_url(), autocommit=True) as admin:
            killed = 0
            deadline = time.monotonic() + 10
            while not killed and time.monotonic() < deadline:
                killed = len(admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND application_name = %s",
                    (schema_of(pg_url),),
                ).fetchall())
                time.sleep(0.01)
            assert killed
        blocker.execute("COMMIT")
        thread.join(30)
        # The killed claim rolled back: the messages are all there for whoever claims next
        # (the broker's own retry on a fresh connection may already have).
        [first] = results
        taken = [] if isinstance(first, BaseException) else first
        taken += broker.consume(["q"], 10, 0.5)
    finally:
        blocker.close()
        broker.close()
    assert sorted(d.task_id for d in taken) == [f"t{i}" for i in range(5)]
    assert all(d.delivery_count == 1 for d in taken)


CRASHER = textwrap.dedent(
    """
    import sys
    from celeriac.brokers.postgres import PostgresBroker

    broker = PostgresBroker(sys.argv[1], transport_options={"visibility_timeout": 1.0})
    broker.bind_node("crasher@test")
    held = broker.consume(["q"], 3, 5.0)
    print(len(held), flush=True)
    sys.stdin.read()
    """
)


def test_a_crashed_consumers_messages_come_back(pg_url: str, make_broker: BrokerFactory) -> None:
    broker = make_broker()
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(3)])
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, pg_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "3"
        assert broker.consume(["q"], 10, 0.0) == []  # held
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    started = time.monotonic()
    got: list[Delivery] = []
    while len(got) < 3 and time.monotonic() - started < 20:
        got += broker.consume(["q"], 10, 5.0)
    assert sorted(d.task_id for d in got) == ["t0", "t1", "t2"]
    assert all(d.redelivered and d.delivery_count == 2 for d in got)


def test_the_tables_live_in_the_urls_schema_only(pg_url: str, broker: PostgresBroker) -> None:
    broker.publish("q", envelope("t"))
    with psycopg.connect(server_url(), autocommit=True) as admin:
        schemas = {s for (s,) in admin.execute(
            "SELECT DISTINCT schemaname FROM pg_tables WHERE tablename = 'celeriac_messages'"
            " AND schemaname = %s", (schema_of(pg_url),))}
    assert schemas == {schema_of(pg_url)}


def _terminate_listeners(url: str) -> int:
    """Kill every backend of the test server that sits in LISTEN for this test's schema."""
    with psycopg.connect(server_url(), autocommit=True) as admin:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %%' AND backend_type = 'client backend'"
                " AND application_name = %s",
                (schema_of(url),),
            ).fetchall()
            if killed:
                return len(killed)
            time.sleep(0.01)
    return 0


def test_a_killed_listening_connection_is_replaced(pg_url: str) -> None:
    # application_name marks this test's connections, so only they are killed
    url = f"{pg_url}&application_name={schema_of(pg_url)}"
    waiter, sender = PostgresBroker(url), PostgresBroker(pg_url)
    try:
        got: list[Delivery] = []
        thread = threading.Thread(target=lambda: got.extend(waiter.consume(["q"], 10, 30.0)))
        thread.start()
        assert _terminate_listeners(url) >= 1
        # Whether or not the waiter listens again before this publish: it claims after listening.
        sender.publish("q", envelope("after-kill"))
        thread.join(30)
        assert [d.task_id for d in got] == ["after-kill"]
        with waiter.subscribe("ch") as subscription:
            assert _terminate_listeners(url) >= 1
            sender.broadcast("ch", b"lost")  # fire and forget: may be missed while down
            subscription.get(0.5)
            sender.broadcast("ch", b"later")
            received: list[bytes] = []
            deadline = time.monotonic() + 10
            while b"later" not in received and time.monotonic() < deadline:
                received += subscription.get(0.5)
                if b"later" not in received:
                    sender.broadcast("ch", b"later")
            assert b"later" in received
    finally:
        waiter.close()
        sender.close()


def test_two_processes_publish_each_key_once(pg_url: str, broker: PostgresBroker) -> None:
    from tests.brokers.test_publish_once import PUBLISHER

    broker.queue_size("q")  # the schema exists before the race starts
    count = 200
    start_at = str(time.time() + 1.5)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", PUBLISHER, pg_url, start_at, str(count)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sum(int(out.strip()) for out, _ in outputs) == count
    got = broker.consume(["q"], 10_000, 5.0)
    assert sorted(d.task_id for d in got) == sorted(f"k{n}" for n in range(count))


def test_a_bulk_send_larger_than_a_statement_keeps_its_order(broker: PostgresBroker) -> None:
    from celeriac.brokers import postgres as pg

    total = pg.PUBLISH_CHUNK * 2 + 7
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(total)])
    assert broker.queue_size("q") == total
    got = broker.consume(["q"], total, 5.0)
    assert [d.task_id for d in got] == [f"t{i}" for i in range(total)]


def test_a_bulk_send_is_all_or_nothing(broker: PostgresBroker) -> None:
    from celeriac.brokers import postgres as pg

    items = [("q", envelope(f"t{i}")) for i in range(pg.PUBLISH_CHUNK + 10)]
    # a queue name PostgreSQL cannot store (NUL) in the last chunk fails the whole send
    items.append(("bad\0queue", envelope("bad")))
    with pytest.raises(TransportError):
        broker.publish_many(items)
    assert broker.queue_size("q") == 0


def test_concurrent_consumers_never_share_a_message(make_broker: BrokerFactory) -> None:
    total = 3000
    make_broker().publish_many([("q", envelope(f"t{i}")) for i in range(total)])
    seen: list[list[str]] = [[] for _ in range(4)]

    def drain(slot: int) -> None:
        broker = make_broker()
        while batch := broker.consume(["q"], 7, 0.3):
            seen[slot] += [d.task_id for d in batch]
            broker.ack(batch)

    threads = [threading.Thread(target=drain, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    every = [task_id for part in seen for task_id in part]
    assert len(every) == total and set(every) == {f"t{i}" for i in range(total)}
    assert sum(1 for part in seen if part) >= 2  # they really ran side by side
