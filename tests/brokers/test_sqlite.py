"""What only the SQLite broker promises: several processes on one file, URL forms, persistence."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import time
from contextlib import closing
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path

import pytest

from celeriac._utils.sqlite import parse_url
from celeriac.brokers.sqlite import SQLiteBroker
from celeriac.coordination.sqlite import SQLiteCoordination
from celeriac.exceptions import ImproperlyConfigured, TransportError
from tests.brokers.conftest import envelope

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'broker.db'}"


def _consume_all(url: str, out_path: str, start: Barrier) -> None:
    """Child process: take everything from "q" in small batches and write down what it got."""
    broker = SQLiteBroker(url)
    broker.queue_size("q")  # connect before the barrier, so both children start level
    start.wait(60)
    got: list[str] = []
    while batch := broker.consume(["q"], 5, 1.0):
        got.extend(d.task_id for d in batch)
        # Stand-in for running the tasks. Without it one process can hold SQLite's write lock
        # nearly all the time and the other, backing off in the busy handler, may get nothing.
        time.sleep(0.001)
        broker.ack(batch)
    broker.close()
    Path(out_path).write_text(json.dumps(got))


def _claim_and_hang(url: str, claimed: Event) -> None:
    """Child process: claim one message and never ack it (the parent SIGKILLs us)."""
    broker = SQLiteBroker(url, transport_options={"visibility_timeout": 0.5})
    broker.consume(["q"], 1, 30)
    claimed.set()
    time.sleep(60)


def test_two_processes_never_share_a_message(url: str, tmp_path: Path) -> None:
    broker = SQLiteBroker(url)
    sent = [f"t{i}" for i in range(2000)]
    broker.publish_many([("q", envelope(task_id)) for task_id in sent])
    outs = [tmp_path / f"got{i}.json" for i in range(2)]
    start = SPAWN.Barrier(len(outs) + 1)
    children = [SPAWN.Process(target=_consume_all, args=(url, str(out), start)) for out in outs]
    for child in children:
        child.start()
    start.wait(60)
    for child in children:
        child.join(90)
    for child in children:
        if child.is_alive():
            child.kill()
            child.join()
    assert [child.exitcode for child in children] == [0, 0]
    got = [json.loads(out.read_text()) for out in outs]
    assert set(got[0]).isdisjoint(got[1])
    assert sorted(got[0] + got[1]) == sorted(sent)
    assert len(got[0] + got[1]) == len(sent)
    assert got[0] and got[1], "one consumer took everything: the test proved nothing"
    assert broker.queue_size("q") == 0
    broker.close()


def test_killed_consumer_message_is_redelivered(url: str) -> None:
    broker = SQLiteBroker(url, transport_options={"visibility_timeout": 0.5})
    broker.publish("q", envelope("orphan"))
    claimed = SPAWN.Event()
    child = SPAWN.Process(target=_claim_and_hang, args=(url, claimed))
    child.start()
    try:
        assert claimed.wait(60)
        assert broker.consume(["q"], 1, 0) == []
        os.kill(child.pid or 0, signal.SIGKILL)
    finally:
        child.join(30)
    [again] = broker.consume(["q"], 1, 5)
    assert again.task_id == "orphan"
    assert again.redelivered is True
    assert again.delivery_count == 2
    broker.ack([again])
    broker.close()


def test_forked_child_uses_its_own_connection(url: str) -> None:
    broker = SQLiteBroker(url)
    broker.publish("q", envelope("from-parent"))  # the parent now holds a connection
    child = multiprocessing.get_context("fork").Process(
        target=broker.publish, args=("q", envelope("from-child"))
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    got = [d.task_id for d in broker.consume(["q"], 10, 5)]
    assert got == ["from-parent", "from-child"]
    broker.close()


def test_revokes_survive_a_restart_in_the_brokers_file(url: str) -> None:
    broker = SQLiteBroker(url)
    broker.publish("q", envelope("t1"))
    first = SQLiteCoordination(url)
    first.revoke(["gone"], 60)
    first.close()
    broker.close()
    second = SQLiteCoordination(url)
    assert second.revoked(["gone", "kept"]) == {"gone"}
    second.close()
    with closing(sqlite3.connect(SQLiteBroker(url).path)) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert {"messages", "revoked", "workers", "dedupe", "rejected"} <= tables


def test_messages_survive_a_restart(url: str) -> None:
    first = SQLiteBroker(url)
    first.publish("q", envelope("t1"))
    first.publish("q", envelope("t2", eta_in_s=60))
    first.close()
    second = SQLiteBroker(url)
    assert second.queue_size("q") == 2
    assert [d.task_id for d in second.consume(["q"], 10, 1)] == ["t1"]
    second.close()


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_url("sqlite:///rel/q.db") == str(tmp_path / "rel" / "q.db")
    assert parse_url("sqlite:////abs/q.db") == "/abs/q.db"
    assert parse_url("sqla+sqlite:////abs/q.db?timeout=3") == "/abs/q.db"
    assert parse_url("sqlite://") == str(tmp_path / "celeriac.db")
    assert parse_url("sqlite:///") == str(tmp_path / "celeriac.db")
    with pytest.raises(ValueError):
        parse_url("sqlite:///:memory:")
    with pytest.raises(ImproperlyConfigured, match="memory://"):
        SQLiteBroker("sqlite:///:memory:")


def test_relative_url_is_fixed_at_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    broker = SQLiteBroker("sqlite:///rel.db")
    monkeypatch.chdir("/")
    broker.publish("q", envelope("t1"))
    assert (tmp_path / "rel.db").exists()
    broker.close()


def test_unusable_path_raises_transport_error(tmp_path: Path) -> None:
    broker = SQLiteBroker(f"sqlite:///{tmp_path / 'missing-dir' / 'q.db'}")
    with pytest.raises(TransportError, match="missing-dir"):
        broker.publish("q", envelope("t1"))
    broker.close()


def test_many_ids_are_chunked(url: str) -> None:
    broker = SQLiteBroker(url)
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(1200)])
    held = broker.consume(["q"], 1200, 5)
    assert len(held) == 1200
    broker.renew(held)
    broker.requeue(held[:600])
    assert broker.queue_size("q") == 600
    store = SQLiteCoordination(url)
    store.revoke([d.task_id for d in held[:700]], 60)
    assert len(store.revoked([d.task_id for d in held])) == 700
    store.close()
    broker.ack(held)
    # the 600 given back are no longer ours: the ack deletes only the 600 still held
    assert broker.queue_size("q") == 600
    again = broker.consume(["q"], 1200, 5)
    assert len(again) == 600
    broker.ack(again)
    assert broker.queue_size("q") == 0
    broker.close()
