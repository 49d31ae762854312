"""A restarted worker takes back at once what a dead earlier incarnation of its node held
(``Broker.bind_node`` / ``Broker.reclaim_node``), and never what a live holder holds."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.brokers import Broker, base, create_broker
from celeriac.coordination import CoordinationStore
from tests.brokers.conftest import BrokerFactory, EnvelopeFactory

ROOT = Path(__file__).resolve().parents[2]
LONG_LEASE = {"visibility_timeout": 60}
NODE = "reclaim@test"


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def _holding(url: str, node: str, make_envelope: EnvelopeFactory, count: int) -> Broker:
    """A broker bound to ``node`` that published and claimed ``count`` messages on "q"."""
    holder = create_broker(url, LONG_LEASE)
    holder.bind_node(node)
    for i in range(count):
        holder.publish("q", make_envelope(f"t{i}"))
    assert len(holder.consume(["q"], count, 5.0)) == count
    return holder


def _die(holder: Broker) -> None:
    """The in-process stand-in for a crash: the broker object is gone without requeueing."""
    holder.close()
    del holder
    gc.collect()


def test_restarted_node_takes_back_a_dead_predecessors_messages(
    broker_url: str, make_broker: BrokerFactory, make_envelope: EnvelopeFactory
) -> None:
    _die(_holding(broker_url, NODE, make_envelope, 3))
    successor = make_broker(**LONG_LEASE)
    successor.bind_node(NODE)
    assert successor.consume(["q"], 10, 0.2) == []  # still leased: one lease is 60 s
    assert successor.reclaim_node(NODE, ["q"]) == 3
    got = successor.consume(["q"], 10, 5.0)
    assert sorted(d.task_id for d in got) == ["t0", "t1", "t2"]
    assert all(d.redelivered and d.delivery_count == 2 for d in got)
    assert successor.reclaim_node(NODE, ["q"]) == 0  # its own are not reclaimed
    successor.ack(got)
    assert successor.queue_size("q") == 0


def test_a_live_duplicate_keeps_its_messages(
    broker_url: str, make_broker: BrokerFactory, make_envelope: EnvelopeFactory
) -> None:
    live = _holding(broker_url, NODE, make_envelope, 2)
    try:
        duplicate = make_broker(**LONG_LEASE)
        duplicate.bind_node(NODE)
        assert duplicate.reclaim_node(NODE, ["q"]) == 0
        assert duplicate.consume(["q"], 10, 0.2) == []
    finally:
        live.close()


def test_another_nodes_messages_are_left_alone(
    broker_url: str, make_broker: BrokerFactory, make_envelope: EnvelopeFactory
) -> None:
    _die(_holding(broker_url, "other@test", make_envelope, 2))
    worker = make_broker(**LONG_LEASE)
    worker.bind_node(NODE)
    assert worker.reclaim_node(NODE, ["q"]) == 0
    assert worker.consume(["q"], 10, 0.2) == []


HOLDER = textwrap.dedent(
    """
    import sys
    from celeriac.brokers import create_broker
    from celeriac.message import Envelope

    broker = create_broker(sys.argv[1], {"visibility_timeout": 60})
    broker.bind_node(sys.argv[2])
    for i in range(2):
        broker.publish("q", Envelope(b"[[], {}, {}]", {"id": f"p{i}", "task": "t"}, {}))
    assert len(broker.consume(["q"], 2, 5.0)) == 2
    print("held", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def holder_process(broker_url: str) -> Iterator[subprocess.Popen[str]]:
    """Another process of this machine, bound to NODE and holding 2 messages until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, broker_url, NODE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.communicate(timeout=10)  # reaps it and closes the pipes


def test_held_by_a_process_of_this_machine_reclaimed_once_it_is_gone(
    holder_process: subprocess.Popen[str], make_broker: BrokerFactory
) -> None:
    successor = make_broker(**LONG_LEASE)
    successor.bind_node(NODE)
    assert successor.reclaim_node(NODE, ["q"]) == 0  # alive
    holder_process.kill()
    holder_process.wait(10)
    assert successor.reclaim_node(NODE, ["q"]) == 2
    assert sorted(d.task_id for d in successor.consume(["q"], 10, 5.0)) == ["p0", "p1"]


def test_held_on_another_machine_reclaimed_once_its_presence_lapsed(
    broker_url: str, make_broker: BrokerFactory, make_envelope: EnvelopeFactory,
    coordination: CoordinationStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base, "_MACHINE", "elsewhere")
    remote = _holding(broker_url, NODE, make_envelope, 2)
    monkeypatch.undo()
    try:
        coordination.announce(NODE, {"pid": 1}, ttl_s=60)
        successor = make_broker(**LONG_LEASE)
        successor.bind_node(NODE)

        def announced() -> bool:
            return coordination.is_announced(NODE)

        assert successor.reclaim_node(NODE, ["q"], announced) == 0  # announced: alive
        assert successor.reclaim_node(NODE, ["q"]) == 0  # nobody to ask: alive
        coordination.withdraw(NODE)
        assert successor.reclaim_node(NODE, ["q"], announced) == 2
    finally:
        remote.close()


def test_consumer_names_parse_from_the_right() -> None:
    name = base.consumer_name("odd|name@host", "tok")
    holder = base.Holder.parse(name)
    assert holder is not None
    assert (holder.node, holder.pid, holder.token) == ("odd|name@host", os.getpid(), "tok")
    assert base.Holder.parse("host:123:abcdef") is None  # an older release's name


def test_a_killed_unreaped_process_counts_as_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not base._process_gone(proc.pid)
        proc.kill()
        # Not waited for: a zombie until reaped, holding its pid but running nothing.
        deadline_polls = 200
        while not base._process_gone(proc.pid) and deadline_polls:
            deadline_polls -= 1
            os.sched_yield()
        assert base._process_gone(proc.pid)
    finally:
        proc.wait(10)
    assert base._process_gone(proc.pid)
