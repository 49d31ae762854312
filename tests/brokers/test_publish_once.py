"""``Broker.publish_once``: one message per key within the ttl, atomically, across processes, on
every broker declaring ``capabilities.atomic_publish_once``; its keys are the coordination
store's ``add_once`` keys of the same URL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from celeriac.brokers import Broker, create_broker
from celeriac.coordination import CoordinationStore
from tests.brokers.conftest import BrokerFactory, EnvelopeFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _atomic_only(request: pytest.FixtureRequest) -> None:
    """Tests on the contract's brokers run only on those declaring the capability."""
    if "make_broker" not in request.fixturenames:
        return
    broker: Broker = request.getfixturevalue("make_broker")()
    if not broker.capabilities.atomic_publish_once:
        pytest.skip(f"{broker.url}: no atomic publish_once (beat uses add_once, then publish)")


def drain(broker: Broker, queue: str = "q") -> list[str]:
    deliveries = broker.consume([queue], 10_000, 0.0)
    broker.ack(deliveries)
    return [d.task_id for d in deliveries]


def test_second_publish_with_the_same_key_is_refused(broker: Broker,
                                                     make_envelope: EnvelopeFactory) -> None:
    assert broker.publish_once("q", make_envelope("a"), "key-1", 60) is True
    assert broker.publish_once("q", make_envelope("b"), "key-1", 60) is False
    assert broker.queue_size("q") == 1
    assert broker.publish_once("q", make_envelope("c"), "key-2", 60) is True
    assert drain(broker) == ["a", "c"]


def test_the_key_is_free_again_after_its_ttl(broker: Broker,
                                             make_envelope: EnvelopeFactory) -> None:
    assert broker.publish_once("q", make_envelope("a"), "k", 0.2)
    assert not broker.publish_once("q", make_envelope("b"), "k", 0.2)
    time.sleep(0.3)
    assert broker.publish_once("q", make_envelope("c"), "k", 0.2)
    assert drain(broker) == ["a", "c"]


def test_consuming_the_message_does_not_free_the_key(broker: Broker,
                                                     make_envelope: EnvelopeFactory) -> None:
    assert broker.publish_once("q", make_envelope("a"), "k", 60)
    assert drain(broker) == ["a"]
    assert not broker.publish_once("q", make_envelope("a"), "k", 60)
    assert drain(broker) == []


def test_keys_are_shared_by_brokers_on_one_url(make_broker: BrokerFactory,
                                               make_envelope: EnvelopeFactory) -> None:
    one, two = make_broker(), make_broker()
    assert one.publish_once("q", make_envelope("a"), "k", 60)
    assert not two.publish_once("q", make_envelope("a"), "k", 60)
    assert drain(two) == ["a"]


def test_a_published_message_keeps_its_eta(broker: Broker,
                                           make_envelope: EnvelopeFactory) -> None:
    assert broker.publish_once("q", make_envelope("later", eta_in_s=0.3), "k", 60)
    assert broker.consume(["q"], 1, 0.0) == []
    (delivery,) = broker.consume(["q"], 1, 5.0)
    assert delivery.task_id == "later"
    broker.ack([delivery])


def test_concurrent_threads_publish_each_key_once(make_broker: BrokerFactory,
                                                  make_envelope: EnvelopeFactory) -> None:
    keys = [f"k{n}" for n in range(100)]
    wins: list[int] = []
    barrier = threading.Barrier(4)

    def publish() -> None:
        broker = make_broker()
        barrier.wait()
        wins.append(sum(broker.publish_once("q", make_envelope(k), k, 60) for k in keys))

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(wins) == len(keys)
    assert sorted(drain(make_broker())) == sorted(keys)


PUBLISHER = """
import sys, time
from celeriac.brokers import create_broker
from celeriac.message import Envelope

url, start_at, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
broker = create_broker(url, {})
broker.queue_size("q")  # connect before the start line
while time.time() < start_at:
    time.sleep(0.001)
won = 0
for n in range(count):
    envelope = Envelope(body=b"[[], {}, {}]", headers={"id": f"k{n}", "task": "t"})
    won += broker.publish_once("q", envelope, f"k{n}", 60)
print(won)
"""


def test_two_processes_publish_each_key_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    count = 200
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    start_at = str(time.time() + 1.5)
    processes = [
        subprocess.Popen([sys.executable, "-c", PUBLISHER, url, start_at, str(count)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    wins = [int(out.strip()) for out, _ in outputs]
    assert sum(wins) == count
    broker = create_broker(url, {})
    try:
        ids = drain(broker)
    finally:
        broker.close()
    assert len(ids) == count
    assert sorted(ids) == sorted(f"k{n}" for n in range(count))


def test_a_key_taken_by_publish_once_is_taken_in_the_coordination_store(
    broker: Broker, coordination: CoordinationStore, make_envelope: EnvelopeFactory
) -> None:
    assert broker.publish_once("q", make_envelope("a"), "shared", 60)
    assert not coordination.add_once("shared", 60)
    assert coordination.add_once("other", 60)
    assert not broker.publish_once("q", make_envelope("b"), "other", 60)
    assert drain(broker) == ["a"]


def test_publish_once_exists_exactly_where_the_capability_says() -> None:
    from celeriac.brokers.memory import MemoryBroker
    from celeriac.brokers.redis import RedisBroker
    from celeriac.brokers.sqlite import SQLiteBroker

    for cls in (MemoryBroker, SQLiteBroker, RedisBroker):
        implemented = cls.publish_once is not Broker.publish_once
        assert implemented == cls.capabilities.atomic_publish_once, cls
