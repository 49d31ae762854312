"""settle_with: results stored and messages acked together when broker and backend share a store."""

from __future__ import annotations

from pathlib import Path

from celeriac import states
from celeriac.backends import create_backend
from celeriac.brokers import create_broker
from celeriac.message import Envelope


def _envelope(task_id: str) -> Envelope:
    return Envelope(body=b"[[], {}, {}]", headers={"id": task_id, "task": "t"},
                    properties={"correlation_id": task_id})


def test_sqlite_settles_in_one_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    broker, backend = create_broker(url), create_backend(url)
    try:
        broker.publish("q", _envelope("a"))
        broker.publish("q", _envelope("b"))
        deliveries = broker.consume(["q"], 10, 1.0)
        settle = broker.settle_with(backend)
        assert settle is not None
        settle([("a", states.SUCCESS, b'{"status": "SUCCESS"}')], None, deliveries)
        assert backend.get_state("a") == states.SUCCESS
        assert backend.get("a") == b'{"status": "SUCCESS"}'
        assert broker.queue_size("q") == 0
        assert broker.consume(["q"], 10, 0.0) == []
    finally:
        broker.close()
        backend.close()


def test_no_settler_across_stores(tmp_path: Path) -> None:
    broker = create_broker(f"sqlite:///{tmp_path / 'a.db'}")
    other = create_backend(f"sqlite:///{tmp_path / 'b.db'}")
    memory = create_backend("memory://settle-test")
    try:
        assert broker.settle_with(other) is None
        assert broker.settle_with(memory) is None
        assert create_broker("memory://settle-test").settle_with(memory) is None
    finally:
        broker.close()
        other.close()
