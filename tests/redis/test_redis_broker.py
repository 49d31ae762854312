"""The Redis broker beyond the contract suite: URL forms, the key layout, competing consumers,
leases, scheduling, priorities, publish_once, Unix sockets and surviving a Redis restart."""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from celeriac._redis.client import pack_commands
from celeriac._utils import redis_wire
from celeriac._utils.redis_wire import parse_redis_url, redact
from celeriac.brokers import create_broker
from celeriac.brokers.redis import RedisBroker
from celeriac.coordination import create_store
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from celeriac.message import Envelope
from tests.brokers.conftest import envelope
from tests.redis.conftest import FAST_FAIL, RedisServer
from tests.redis.support import drop_keys

MakeBroker = Callable[..., RedisBroker]


@pytest.fixture
def make_broker(broker_url: str) -> Iterator[MakeBroker]:
    made: list[RedisBroker] = []

    def make(url: str | None = None, **options: Any) -> RedisBroker:
        broker = create_broker(url or broker_url, options)
        assert isinstance(broker, RedisBroker)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def raw(broker_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(broker_url.partition("?")[0])
    yield client
    client.close()


def ids(deliveries: list[Any]) -> list[str]:
    return [d.task_id for d in deliveries]


# -- URLs (no connection needed) ----------------------------------------------------------------
def test_redis_url_forms() -> None:
    p = parse_redis_url("redis://")
    assert (p.host, p.port, p.db, p.password, p.kind) == ("localhost", 6379, 0, None, "tcp")
    p = parse_redis_url("redis://:s%40cret@cache.local:6380/3")
    assert (p.host, p.port, p.db, p.password) == ("cache.local", 6380, 3, "s@cret")
    p = parse_redis_url("redis://app:pw@[::1]:7000/2?socket_timeout=3")
    assert (p.host, p.port, p.db, p.username, p.password) == ("::1", 7000, 2, "app", "pw")
    assert p.query == {"socket_timeout": "3"}
    with pytest.raises(ValueError, match="database must be a number"):
        parse_redis_url("redis://localhost/zero")


def test_socket_url_forms() -> None:
    p = parse_redis_url("redis+socket:///var/run/redis.sock?virtual_host=4")
    assert (p.kind, p.socket_path, p.db) == ("unix", "/var/run/redis.sock", 4)
    p = parse_redis_url("unix:///tmp/r.sock?db=2&password=pw")
    assert (p.kind, p.socket_path, p.db, p.password) == ("unix", "/tmp/r.sock", 2, "pw")
    with pytest.raises(ValueError, match="needs a path"):
        parse_redis_url("unix://")


def test_sentinel_url_forms() -> None:
    p = parse_redis_url("sentinel://:pw@s1:26379/1;sentinel://s2;sentinel://s3:26400")
    assert p.kind == "sentinel"
    assert p.sentinels == (("s1", 26379), ("s2", 26379), ("s3", 26400))
    assert (p.db, p.password) == (1, "pw")
    broker = RedisBroker(
        "sentinel://s1:26379;sentinel://s2:26379/0", transport_options={"master_name": "mymaster"}
    )
    assert broker._conn.options["master_name"] == "mymaster"
    broker.close()
    with pytest.raises(ImproperlyConfigured, match="master_name"):
        RedisBroker("sentinel://s1:26379")


def test_rediss_options_from_url_and_transport_options() -> None:
    broker = RedisBroker(
        "rediss://:pw@h:6380/1?ssl_cert_reqs=CERT_NONE&ssl_ca_certs=/ca.pem&socket_timeout=4"
    )
    kwargs = broker._conn._kwargs
    assert kwargs["ssl"] is True
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_NONE
    assert kwargs["ssl_check_hostname"] is False
    assert kwargs["ssl_ca_certs"] == "/ca.pem"
    assert kwargs["socket_timeout"] == 4.0
    broker.close()
    broker = RedisBroker(
        "redis://h:6380/1",
        transport_options={
            "broker_use_ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_certfile": "/c.pem"},
            "max_connections": "20",
            "health_check_interval": 5,
            "visibility_timeout": 120,
        },
    )
    kwargs = broker._conn._kwargs
    assert kwargs["ssl"] is True and kwargs["ssl_certfile"] == "/c.pem"
    assert (kwargs["max_connections"], kwargs["health_check_interval"]) == (20, 5)
    assert broker.lease_s == 120.0
    broker.close()


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown URL option"):
        RedisBroker("redis://localhost/0?sokcet_timeout=1")
    with pytest.raises(ImproperlyConfigured, match="ssl_cert_reqs"):
        RedisBroker("rediss://localhost/0?ssl_cert_reqs=sometimes")
    with pytest.raises(ImproperlyConfigured):
        RedisBroker("redis://localhost/0", transport_options={"socket_timeout": "soon"})


def test_every_scheme_maps_to_the_redis_broker() -> None:
    for url in ("redis://h/1", "rediss://h/1", "redis+socket:///tmp/x.sock", "unix:///tmp/x.sock"):
        broker = create_broker(url)
        assert isinstance(broker, RedisBroker)
        broker.close()


def test_clients_are_built_without_connecting() -> None:
    brokers = {
        "sentinel": RedisBroker(
            "sentinel://:pw@s1;sentinel://s2/2", transport_options={"master_name": "m"}
        ),
        "unix": RedisBroker("unix:///tmp/nowhere.sock?db=3"),
        "tls": RedisBroker("rediss://h:1/0?ssl_cert_reqs=required"),
    }
    pools = {name: b._conn.base.connection_pool for name, b in brokers.items()}
    assert type(pools["sentinel"]).__name__ == "SentinelConnectionPool"
    assert pools["sentinel"].connection_kwargs["db"] == 2
    assert pools["unix"].connection_kwargs["path"] == "/tmp/nowhere.sock"
    assert pools["tls"].connection_class is redis.SSLConnection
    for broker in brokers.values():
        broker.close()


def test_wire_helpers() -> None:
    commands = [("XACK", b"k", "celeriac", b"1-0", 5), ("XDEL", b"k", b"1-0")]
    assert pack_commands(commands) == redis_wire.pack_commands(commands)
    parts = [b"", b"\x00\xff", b"headers" * 100]
    assert redis_wire.unframe(redis_wire.frame(parts)) == parts
    assert redis_wire.priority_steps(None) == tuple(range(10))
    assert redis_wire.priority_steps("3, 9") == (0, 3, 9)
    with pytest.raises(ImproperlyConfigured, match="priority_steps"):
        RedisBroker("redis://h/0", transport_options={"priority_steps": []})


def test_redact_hides_passwords() -> None:
    assert redact("redis://user:secret@h:1/0") == "redis://user:***@h:1/0"
    assert "secret" not in redact("sentinel://:secret@a;sentinel://:secret@b")
    assert "secret" not in redact("unix:///tmp/r.sock?password=secret&db=1")


# -- key layout ---------------------------------------------------------------------------------
def test_key_layout_and_global_prefix(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    broker = make_broker()
    broker.publish("q", envelope("now", priority=7))
    broker.publish("q", envelope("later", eta_in_s=60))
    assert raw.xlen(f"{prefix}celeriac:q:q:7") == 1
    assert raw.zcard(f"{prefix}celeriac:eta:q") == 1
    [entry] = raw.xrange(f"{prefix}celeriac:q:q:7")
    assert set(entry[1]) == {b"h", b"p", b"b", b"t", b"e"}
    assert entry[1][b"b"] == b"[[2, 2], {}, {}]"
    assert broker.queue_size("q") == 2


def test_priority_steps_option(make_broker: MakeBroker, raw: redis.Redis, prefix: str) -> None:
    broker = make_broker(priority_steps=[0, 5])
    for task_id, priority in [("p0", 0), ("p4", 4), ("p9", 9), ("p5", 5)]:
        broker.publish("q", envelope(task_id, priority=priority))
    assert raw.xlen(f"{prefix}celeriac:q:q:5") == 2
    assert ids(broker.consume(["q"], 10, 1)) == ["p9", "p5", "p0", "p4"]


# -- competing consumers and leases -------------------------------------------------------------
def test_two_consumers_never_get_the_same_message(make_broker: MakeBroker) -> None:
    make_broker().publish_many([("q", envelope(f"t{i}")) for i in range(600)])
    got: dict[str, list[str]] = {"a": [], "b": []}

    def drain(name: str) -> None:
        broker = make_broker()
        while batch := broker.consume(["q"], 7, 0.2):
            got[name] += ids(batch)
            broker.ack(batch)

    threads = [threading.Thread(target=drain, args=(name,)) for name in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == sorted(f"t{i}" for i in range(600))
    assert got["a"] and got["b"]


def test_lapsed_lease_is_reclaimed_by_another_consumer(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    first, second = make_broker(visibility_timeout=0.2), make_broker(visibility_timeout=0.2)
    first.publish("q", envelope("t1"))
    [held] = first.consume(["q"], 10, 1)
    assert held.delivery_count == 1
    [again] = second.consume(["q"], 10, 5)
    assert (again.task_id, again.redelivered, again.delivery_count) == ("t1", True, 2)
    # The first consumer's renew must not take the message back from the second.
    first.renew([held])
    [pending] = raw.xpending_range(f"{prefix}celeriac:q:q:0", "celeriac", "-", "+", 10)
    assert pending["consumer"].decode() == second.consumer
    second.ack([again])
    assert second.queue_size("q") == 0
    assert raw.xlen(f"{prefix}celeriac:q:q:0") == 0


def test_requeue_is_immediate_for_everyone(make_broker: MakeBroker) -> None:
    first, second = make_broker(), make_broker()
    first.publish("q", envelope("t1"))
    held = first.consume(["q"], 10, 1)
    first.requeue(held)
    [again] = second.consume(["q"], 10, 0)
    assert (again.task_id, again.redelivered, again.delivery_count) == ("t1", True, 2)
    second.requeue([again])
    [third] = first.consume(["q"], 10, 0)
    assert third.delivery_count == 3


def test_acks_are_settled_before_the_next_call(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    broker = make_broker()
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(50)])
    for delivery in broker.consume(["q"], 50, 1):
        broker.ack([delivery])
    assert broker.queue_size("q") == 0
    assert raw.xlen(f"{prefix}celeriac:q:q:0") == 0
    assert raw.xpending(f"{prefix}celeriac:q:q:0", "celeriac")["pending"] == 0


def test_acks_are_sent_again_after_a_broken_connection(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    broker = make_broker()
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(3)])
    broker.ack(broker.consume(["q"], 3, 1))
    broker._acks._connection.disconnect()  # the replies are lost with the socket
    assert broker.queue_size("q") == 0
    assert raw.xpending(f"{prefix}celeriac:q:q:0", "celeriac")["pending"] == 0
    broker.publish("q", envelope("t4"))
    broker.ack(broker.consume(["q"], 3, 1))
    assert broker.queue_size("q") == 0


# -- scheduling ---------------------------------------------------------------------------------
def test_eta_waits_in_a_sorted_set(make_broker: MakeBroker, raw: redis.Redis, prefix: str) -> None:
    producer, consumer = make_broker(), make_broker(polling_interval=0.05)
    sent = envelope("later", eta_in_s=0.4, priority=3)
    producer.publish("q", sent)
    [(member, score)] = raw.zrange(f"{prefix}celeriac:eta:q", 0, -1, withscores=True)
    assert score == pytest.approx(sent.eta_timestamp())
    assert member[:1] == b"3"
    assert consumer.consume(["q"], 10, 0.1) == []
    started = time.monotonic()
    [got] = consumer.consume(["q"], 10, 5)
    assert time.time() >= score
    assert time.monotonic() - started < 2
    assert got.task_id == "later" and got.envelope.priority == 3
    assert raw.zcard(f"{prefix}celeriac:eta:q") == 0


def test_consume_never_blocks_longer_than_asked(make_broker: MakeBroker) -> None:
    broker = make_broker(polling_interval=5)
    started = time.monotonic()
    assert broker.consume(["q"], 10, 0.05) == []
    assert 0.04 <= time.monotonic() - started < 0.5


# -- publish_once -------------------------------------------------------------------------------
def test_publish_once_refuses_a_duplicate_from_another_client(make_broker: MakeBroker) -> None:
    first, second = make_broker(), make_broker()
    assert first.publish_once("q", envelope("run-1"), "beat:entry:2024-01-01T00:00", 0.3)
    assert not second.publish_once("q", envelope("run-2"), "beat:entry:2024-01-01T00:00", 0.3)
    assert second.publish_once("q", envelope("other"), "beat:other:2024-01-01T00:00", 0.3)
    assert first.publish_once("q", envelope("later", eta_in_s=60), "beat:eta", 10)
    assert not first.publish_once("q", envelope("later2", eta_in_s=60), "beat:eta", 10)
    assert ids(first.consume(["q"], 10, 1)) == ["run-1", "other"]
    assert first.queue_size("q") == 1
    time.sleep(0.35)
    assert second.publish_once("q", envelope("run-3"), "beat:entry:2024-01-01T00:00", 0.3)


# -- groups disappearing ------------------------------------------------------------------------
def test_group_recreated_when_streams_vanish(
    make_broker: MakeBroker, raw: redis.Redis, broker_url: str, prefix: str
) -> None:
    broker = make_broker()
    assert broker.consume(["q"], 10, 0) == []
    drop_keys(broker_url)  # what a Redis restart without persistence looks like
    broker.publish("q", envelope("t1"))
    assert ids(broker.consume(["q"], 10, 1)) == ["t1"]
    raw.delete(f"{prefix}celeriac:q:q:0")
    assert broker.consume(["q"], 10, 0.2) == []


# -- Unix socket --------------------------------------------------------------------------------
def test_unix_socket_roundtrip(socket_redis: RedisServer) -> None:
    broker = create_broker(socket_redis.url)
    try:
        broker.publish("q", envelope("t1"))
        [got] = broker.consume(["q"], 10, 1)
        assert got.task_id == "t1"
        broker.ack([got])
        assert broker.queue_size("q") == 0
    finally:
        broker.close()
    url = f"unix://{socket_redis.socket_path}?db=3"
    broker = create_broker(url)
    try:
        broker.publish("q", envelope("t2"))
        assert ids(broker.consume(["q"], 10, 1)) == ["t2"]
    finally:
        broker.close()


# -- fork ---------------------------------------------------------------------------------------
def test_forked_child_gets_its_own_connections_and_consumer_name(make_broker: MakeBroker) -> None:
    broker = make_broker()
    broker.publish("q", envelope("from-parent"))
    parent_consumer = broker.consumer
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            got = broker.consume(["q"], 10, 1)
            broker.ack(got)
            broker.publish("q", envelope("from-child"))
            ok = ids(got) == ["from-parent"] and broker.consumer != parent_consumer
            broker.queue_size("q")  # flushes the child's acks
            code = 0 if ok else 1
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"\x00"
    os.waitpid(pid, 0)
    assert ids(broker.consume(["q"], 10, 1)) == ["from-child"]


# -- restarts -----------------------------------------------------------------------------------
def test_survives_a_redis_restart(private_redis: RedisServer) -> None:
    broker = create_broker(private_redis.url, {**FAST_FAIL, "visibility_timeout": 5})
    try:
        broker.publish_many([("q", envelope(f"t{i}")) for i in range(5)])
        held = broker.consume(["q"], 2, 1)
        broker.ack(held)
        private_redis.stop()
        for call in (
            lambda: broker.publish("q", envelope("lost")),
            lambda: broker.consume(["q"], 10, 0.1),
            lambda: broker.queue_size("q"),
        ):
            started = time.monotonic()
            with pytest.raises(BrokerConnectionError, match="unreachable"):
                call()
            assert time.monotonic() - started < 5
        private_redis.start()
        # Fresh data (nothing was persisted); groups and scripts come back by themselves.
        assert broker.queue_size("q") == 0
        broker.publish("q", envelope("after"))
        [got] = broker.consume(["q"], 10, 1)
        assert got.task_id == "after"
        broker.ack([got])
        store = create_store(private_redis.url)
        store.revoke(["x"], 60)
        assert store.revoked(["x"]) == {"x"}
        store.close()
    finally:
        broker.close()


def test_unreachable_server_is_a_broker_connection_error() -> None:
    broker = create_broker("redis://127.0.0.1:1/0", FAST_FAIL)
    try:
        with pytest.raises(BrokerConnectionError, match=r"127\.0\.0\.1:1/"):
            broker.publish("q", envelope("t1"))
    finally:
        broker.close()


# -- hostile storage and ack ownership (issue 8) ------------------------------------------------
def test_ack_after_another_consumer_reclaimed_does_not_delete(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    first, second = make_broker(visibility_timeout=0.2), make_broker(visibility_timeout=0.2)
    first.publish("q", envelope("t1"))
    [held] = first.consume(["q"], 10, 1)
    [again] = second.consume(["q"], 10, 5)
    assert again.task_id == "t1"
    first.ack([held])
    first.queue_size("q")  # settles the write-behind acks
    stream = f"{prefix}celeriac:q:q:0"
    assert raw.xlen(stream) == 1
    [pending] = raw.xpending_range(stream, "celeriac", "-", "+", 10)
    assert pending["consumer"].decode() == second.consumer
    second.ack([again])
    second.queue_size("q")
    assert raw.xlen(stream) == 0
    assert raw.xpending(stream, "celeriac")["pending"] == 0


def test_acks_survive_a_script_flush(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    broker = make_broker()
    broker.publish_many([("q", envelope(f"t{i}")) for i in range(3)])
    broker.ack(broker.consume(["q"], 3, 1))
    raw.script_flush()
    broker.publish("q", envelope("t4"))
    broker.ack(broker.consume(["q"], 3, 1))
    assert broker.queue_size("q") == 0
    assert raw.xlen(f"{prefix}celeriac:q:q:0") == 0


def test_stream_fields_are_read_by_name(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    broker = make_broker()
    stream = f"{prefix}celeriac:q:q:0"
    raw.execute_command(
        "XADD", stream, "*", "e", "utf-8", "b", "[[1], {}, {}]", "t", "application/json",
        "p", "{}", "h", '{"id": "reordered", "task": "x"}', "n", "2",
    )
    raw.xadd(stream, {"h": '{"id": "partial", "task": "x"}', "p": "{}"})
    raw.xadd(stream, {"h": "[1]", "p": "{}", "b": "x", "t": "a", "e": "b"})
    broker.publish("q", envelope("good"))
    deliveries = broker.consume(["q"], 10, 1)
    assert len(deliveries) == 4
    reordered, partial, not_object, good = deliveries
    assert reordered.malformed is None and reordered.task_id == "reordered"
    assert reordered.envelope.body == b"[[1], {}, {}]" and reordered.delivery_count == 3
    assert partial.malformed is not None and "missing" in partial.malformed
    assert partial.task_id == "partial"
    assert not_object.malformed is not None and "headers" in not_object.malformed
    assert good.malformed is None and good.task_id == "good"


def test_blocking_read_parses_by_name_too(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    broker = make_broker(polling_interval=0.5)
    assert broker.consume(["q"], 10, 0.01) == []  # creates the group
    stream = f"{prefix}celeriac:q:q:0"

    def later() -> None:
        time.sleep(0.1)
        raw.xadd(stream, {"h": '{"id": "late", "task": "x"}', "p": "[]"})

    thread = threading.Thread(target=later)
    thread.start()
    deliveries = broker.consume(["q"], 10, 2)
    thread.join()
    [late] = deliveries
    assert late.malformed is not None and late.task_id == "late"


def test_malformed_scheduled_members_are_dead_lettered(
    make_broker: MakeBroker, raw: redis.Redis, prefix: str
) -> None:
    broker = make_broker()
    broker.publish("q", envelope("scheduled", eta_in_s=0.05))
    eta_key = f"{prefix}celeriac:eta:q"
    due = time.time() - 1
    big = b"9" + b"n" * 8 + b"\x00\x00\x00\x05" + b"y" * (200 * 1024)
    raw.zadd(eta_key, {b"": due, b"7nnnnnnnn\xff\xff\xff\xff": due, b"-" * 40: due, big: due})
    time.sleep(0.1)
    deliveries = broker.consume(["q"], 10, 1)
    assert [d.task_id for d in deliveries] == ["scheduled"]
    assert raw.zcard(eta_key) == 0
    # consume.lua logs them where the coordination store on the broker's URL reads its log
    store = create_store(broker.url)
    rejected = store.rejected()
    store.close()
    assert len(rejected) == 4
    for env, reason in rejected:
        assert "scheduled" in reason
        assert len(env.body) <= 64 * 1024
    assert any("truncated" in reason for _, reason in rejected)


def _settle_envelope(task_id: str) -> Envelope:
    return Envelope(body=b"[[], {}, {}]", headers={"id": task_id, "task": "t"},
                    properties={"correlation_id": task_id})


def test_settle_stores_and_acks_in_one_transaction_on_the_same_database(
    broker_url: str, backend_url: str
) -> None:
    from celeriac import states
    from celeriac.backends import create_backend

    same_db = broker_url + "x"  # same database, a key prefix of its own
    broker = create_broker(broker_url)
    backend = create_backend(same_db)
    elsewhere = create_backend(backend_url)  # another database
    try:
        assert broker.settle_with(elsewhere) is None
        settle = broker.settle_with(backend)
        assert settle is not None
        for task_id in ("a", "b", "c"):
            broker.publish("q", _settle_envelope(task_id))
        deliveries = broker.consume(["q"], 10, 1.0)
        record = b'{"status": "SUCCESS", "result": 1}'
        redis_client = broker._conn.client

        def entries() -> int:
            return sum(redis_client.execute_command("XLEN", broker.stream_key("q", s))
                       for s in broker.steps_desc)

        settle([("a", states.SUCCESS, record)], None, deliveries[:2])
        assert backend.get("a") == record
        assert entries() == 1  # both acked (and deleted) in the same round trip
        # after SCRIPT FLUSH (as after a Redis restart) it still settles, loading the scripts
        broker._conn.client.execute_command("SCRIPT", "FLUSH")
        settle([("c", states.SUCCESS, record)], None, deliveries[2:])
        assert backend.get("c") == record
        assert entries() == 0
    finally:
        broker.close()
        backend.close()
        elsewhere.close()
        drop_keys(same_db)
