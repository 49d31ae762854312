"""Each broker's declared ``capabilities`` match what it does (where that is cheap to see)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from celeriac.brokers import Broker, Capabilities
from celeriac.brokers.sqlite import SQLiteBroker
from celeriac.message import Envelope
from tests.brokers.conftest import BrokerFactory, EnvelopeFactory


def test_capabilities_are_declared(broker: Broker) -> None:
    assert isinstance(type(broker).capabilities, Capabilities)


def test_native_delays(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish("q", make_envelope("later", eta_in_s=60))
    held_back = broker.consume(["q"], 10, 0.0) == []
    assert held_back == broker.capabilities.native_delays


def test_priorities(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    broker.publish("q", make_envelope("low", priority=0))
    broker.publish("q", make_envelope("high", priority=9))
    first = broker.consume(["q"], 1, 5.0)[0].task_id
    assert (first == "high") == broker.capabilities.priorities


def test_leases(make_broker: BrokerFactory, make_envelope: EnvelopeFactory) -> None:
    broker = make_broker(visibility_timeout=0.2)
    broker.publish("q", make_envelope("t1"))
    assert broker.consume(["q"], 1, 5.0)
    time.sleep(0.4)
    came_back = broker.consume(["q"], 1, 2.0) != []
    assert came_back == broker.capabilities.leases


def test_oldest_age_of_ready_messages(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    assert broker.oldest_age_s("q") is None
    broker.publish("q", make_envelope("first"))
    time.sleep(0.2)
    broker.publish("q", make_envelope("second"))
    broker.publish("q", make_envelope("scheduled", eta_in_s=60))
    age = broker.oldest_age_s("q")
    assert age is not None and 0.15 <= age < 30
    held = broker.consume(["q"], 1, 5.0)
    assert [d.task_id for d in held] == ["first"]
    younger = broker.oldest_age_s("q")
    assert younger is not None and younger < age
    broker.consume(["q"], 1, 5.0)
    assert broker.oldest_age_s("q") is None  # only the scheduled one is left


def test_sqlite_file_from_before_ready_at_gains_the_column(tmp_path: Path) -> None:
    """A messages table without ``ready_at`` (an older release's file) is migrated on open;
    its old rows still deliver, and only rows with a time count for the age."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, "
        "priority INTEGER NOT NULL DEFAULT 0, eta REAL, lease_until REAL, owner TEXT, "
        "delivery_count INTEGER NOT NULL DEFAULT 0, task_id TEXT, headers BLOB NOT NULL, "
        "properties BLOB NOT NULL, body BLOB NOT NULL, content_type TEXT NOT NULL, "
        "content_encoding TEXT NOT NULL);"
    )
    conn.execute(
        "INSERT INTO messages (queue, task_id, headers, properties, body, content_type, "
        "content_encoding) VALUES ('q', 'old', ?, ?, ?, 'application/json', 'utf-8')",
        (b'{"id": "old", "task": "t"}', b"{}", b"[[], {}, {}]"),
    )
    conn.commit()
    conn.close()
    broker = SQLiteBroker(f"sqlite:///{path}")
    try:
        assert broker.oldest_age_s("q") is None
        broker.publish("q", Envelope(b"[[], {}, {}]", {"id": "new", "task": "t"}))
        assert broker.oldest_age_s("q") is not None
        taken = broker.consume(["q"], 2, 1.0)
        assert sorted(d.task_id for d in taken) == ["new", "old"]
    finally:
        broker.close()


def test_stored_publish(broker: Broker, make_envelope: EnvelopeFactory) -> None:
    """A broker declaring ``stored_publish`` stores stored parts as the very message they
    encode; one that does not refuses ``publish_stored``."""
    from celeriac._utils.stored import envelope_parts

    sent = make_envelope("stored-1", priority=3)
    entries = [envelope_parts(sent)]
    if not broker.capabilities.stored_publish:
        with pytest.raises(NotImplementedError):
            broker.publish_stored("q", 3, ["stored-1"], entries)
        return
    broker.publish_stored("q", 3, ["stored-1"], entries)
    (delivery,) = broker.consume(["q"], 10, 5.0)
    got = delivery.envelope
    assert (got.task_id, got.body, dict(got.headers), dict(got.properties)) == (
        "stored-1", sent.body, dict(sent.headers), dict(sent.properties))
    assert got.priority == 3
