"""Brokers decode each stored message on its own, bound what they keep of rejected messages, and
never let an ack delete a message that went back to the queue or to another consumer."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import orjson
import pytest

from celeriac.backends.sqlite import SQLiteBackend
from celeriac.brokers import Broker
from celeriac.brokers.sqlite import SQLiteBroker
from celeriac.coordination import CoordinationStore
from celeriac.message import Delivery, Envelope
from celeriac.protocol import REJECTED_BODY_MAX_BYTES, REJECTED_HEADERS_MAX_BYTES
from tests.brokers.conftest import envelope


def test_rejected_records_are_bounded(broker: Broker, coordination: CoordinationStore) -> None:
    big = envelope("big", body=b"b" * (REJECTED_BODY_MAX_BYTES * 8), argsrepr="a" * 3_000_000)
    broker.publish("q", big)
    broker.publish("q", envelope("small"))
    deliveries = broker.consume(["q"], 10, 1)
    assert sorted(d.task_id for d in deliveries) == ["big", "small"]
    broker.reject(deliveries, "no good " * 5_000)
    records = {env.task_id: (env, reason) for env, reason in coordination.rejected()}
    env, reason = records["big"]
    assert len(env.body) == REJECTED_BODY_MAX_BYTES
    assert "truncated" in reason and reason.startswith("no good")
    assert len(orjson.dumps(dict(env.headers))) <= REJECTED_HEADERS_MAX_BYTES
    small, _ = records["small"]
    assert small.body == b"[[2, 2], {}, {}]"
    assert dict(small.headers) == {"id": "small", "task": "tests.add"}
    assert broker.queue_size("q") == 0


# -- SQLite: one bad row is a malformed delivery, the rest of the batch is fine ------------------
@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'broker.db'}"


def _insert(path: Path, *rows: tuple[object, ...]) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.executemany(
            "INSERT INTO messages (queue, priority, headers, properties, body, content_type,"
            " content_encoding) VALUES ('q', ?, ?, ?, ?, ?, ?)",
            rows,
        )


def test_sqlite_bad_rows_become_malformed_deliveries(tmp_path: Path, sqlite_url: str) -> None:
    broker = SQLiteBroker(sqlite_url)
    broker.publish("q", envelope("good-1"))
    _insert(
        tmp_path / "broker.db",
        (0, b"[1]", b"{}", b"x", "application/json", "utf-8"),
        (0, b'{"id": "p"}', b"nope", b"x", "application/json", "utf-8"),
        ("high", b'{"id": "q"}', b"{}", 12, 4.5, 3),
    )
    broker.publish("q", envelope("good-2"))
    deliveries = broker.consume(["q"], 10, 1)
    by_id = {d.task_id: d for d in deliveries}
    assert len(deliveries) == 5
    assert by_id["good-1"].malformed is None and by_id["good-2"].malformed is None
    assert by_id["p"].malformed is not None and "properties" in by_id["p"].malformed
    assert by_id["q"].malformed is not None
    [headers_bad] = [d for d in deliveries if not d.task_id]
    assert headers_bad.malformed is not None and "headers" in headers_bad.malformed
    assert headers_bad.envelope.headers == {} and headers_bad.envelope.body == b"x"
    broker.close()


def test_sqlite_scheduled_row_with_text_eta_does_not_break_consume(
    tmp_path: Path, sqlite_url: str
) -> None:
    broker = SQLiteBroker(sqlite_url)
    broker.queue_size("q")
    with closing(sqlite3.connect(tmp_path / "broker.db")) as db, db:
        db.execute(
            "INSERT INTO messages (queue, eta, headers, properties, body, content_type,"
            " content_encoding) VALUES ('q', 'soon', '{}', '{}', x'', 'a', 'b')"
        )
    assert broker.consume(["q"], 10, 0.05) == []
    broker.publish("q", envelope("good"))
    assert [d.task_id for d in broker.consume(["q"], 10, 1)] == ["good"]
    broker.close()


# -- SQLite acks check ownership ---------------------------------------------------------------
def test_sqlite_ack_after_requeue_does_not_delete(sqlite_url: str) -> None:
    first, second = SQLiteBroker(sqlite_url), SQLiteBroker(sqlite_url)
    first.publish("q", envelope("t1"))
    [held] = first.consume(["q"], 10, 1)
    first.requeue([held])
    first.ack([held])  # e.g. a cold shutdown acking what it just gave back
    assert first.queue_size("q") == 1
    [again] = second.consume(["q"], 10, 1)
    assert again.task_id == "t1" and again.redelivered
    first.ack([held])
    assert second.queue_size("q") == 0
    second.requeue([again])
    assert second.queue_size("q") == 1  # the row still exists: ack above deleted nothing
    first.close()
    second.close()


def test_sqlite_ack_after_reclaim_by_another_does_not_delete(sqlite_url: str) -> None:
    first = SQLiteBroker(sqlite_url, transport_options={"visibility_timeout": 0.05})
    second = SQLiteBroker(sqlite_url, transport_options={"visibility_timeout": 30})
    first.publish("q", envelope("t1"))
    [held] = first.consume(["q"], 10, 1)
    time.sleep(0.1)
    [taken] = second.consume(["q"], 10, 1)
    assert taken.task_id == "t1"
    first.ack([held])
    first.reject([held], "late reject")
    second.requeue([taken])
    assert second.queue_size("q") == 1
    [third] = second.consume(["q"], 10, 1)
    second.ack([third])
    assert second.queue_size("q") == 0
    first.close()
    second.close()


def test_sqlite_settle_after_requeue_does_not_delete(tmp_path: Path, sqlite_url: str) -> None:
    broker = SQLiteBroker(sqlite_url)
    backend = SQLiteBackend(sqlite_url)
    settle = broker.settle_with(backend)
    assert settle is not None
    broker.publish("q", envelope("t1"))
    [held] = broker.consume(["q"], 10, 1)
    broker.requeue([held])
    settle([("t1", "SUCCESS", b'{"status": "SUCCESS"}')], None, [held])
    assert broker.queue_size("q") == 1
    [again] = broker.consume(["q"], 10, 1)
    settle([], None, [again])
    assert broker.queue_size("q") == 0
    with closing(sqlite3.connect(tmp_path / "broker.db")) as db, db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    broker.close()
    backend.close()


def test_delivery_has_no_problem_by_default() -> None:
    d = Delivery(Envelope(body=b"", headers={}), "q", 1)
    assert d.malformed is None
