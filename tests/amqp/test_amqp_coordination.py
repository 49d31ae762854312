"""An AMQP broker stores nothing, so with an RPC backend (or none) there is no coordination
store to share: the app then keeps revokes, presence and dedup keys in process-local memory,
as Celery keeps revokes in each worker, and says so once (decision of issue 13)."""

from __future__ import annotations

import logging

import pytest

from celeriac import Celery
from celeriac.coordination import LOCAL_FALLBACK_PREFIX, choose_url, open_store
from celeriac.coordination.memory import MemoryCoordination

AMQP = "amqp://guest:secret@127.0.0.1:5672//"


def test_no_store_anywhere_means_process_local_memory() -> None:
    assert choose_url(None, AMQP, "rpc://") == LOCAL_FALLBACK_PREFIX + "amqp"
    assert choose_url(None, AMQP, None) == LOCAL_FALLBACK_PREFIX + "amqp"
    # A store anywhere else still wins, as before.
    assert choose_url(None, AMQP, "redis://h/1") == "redis://h/1"
    assert choose_url("sqlite:///c.db", AMQP, "rpc://") == "sqlite:///c.db"


def test_the_fallback_is_said_once_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    import celeriac.coordination as coordination

    coordination._warned.discard(LOCAL_FALLBACK_PREFIX + "amqp")
    with caplog.at_level(logging.WARNING, logger="celeriac.coordination"):
        first = open_store({}, AMQP, "rpc://")
        second = open_store({}, AMQP, "rpc://")
    lines = [r.getMessage() for r in caplog.records if r.name == "celeriac.coordination"]
    assert len(lines) == 1
    assert "revokes live only in this process's memory" in lines[0]
    assert "coordination_url" in lines[0] and "several schedulers" in lines[0]
    assert "secret" not in lines[0]
    assert isinstance(first, MemoryCoordination)
    first.revoke(["t1"], 60)
    assert second.revoked(["t1", "t2"]) == {"t1"}  # one store per process
    first.close()
    second.close()


def test_an_app_on_amqp_with_rpc_results_gets_a_working_store() -> None:
    app = Celery("t", broker=AMQP, backend="rpc://")
    store = app.coordination  # nothing connects: the store is memory
    assert isinstance(store, MemoryCoordination)
    assert store.add_once("beat:entry:1", 60) is True
    assert store.add_once("beat:entry:1", 60) is False
