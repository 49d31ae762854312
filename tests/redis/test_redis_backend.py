"""The Redis result backend beyond the contract suite: Celery's key names and format, native
expiry, waiting on pub/sub without polling, one subscriber connection per process, and
surviving a Redis restart."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from celeriac import states
from celeriac.backends import create_backend
from celeriac.backends.redis import RedisBackend, payload_state
from celeriac.exceptions import TransportError
from celeriac.result_meta import build_meta, encode_meta
from tests.redis.conftest import FAST_FAIL, RedisServer

MakeBackend = Callable[..., RedisBackend]


@pytest.fixture
def make_backend(backend_url: str) -> Iterator[MakeBackend]:
    made: list[RedisBackend] = []

    def make(url: str | None = None, **options: Any) -> RedisBackend:
        backend = create_backend(url or backend_url, options)
        assert isinstance(backend, RedisBackend)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def meta(task_id: str, state: str = states.SUCCESS, result: Any = 4) -> bytes:
    """A Celery JSON record; the same bytes for the same arguments."""
    record = build_meta(task_id, state, result)
    record["date_done"] = "2024-01-01T00:00:00+00:00" if state in states.READY_STATES else None
    return encode_meta(record)


def later(delay_s: float, fn: Callable[..., Any], *args: Any) -> threading.Timer:
    timer = threading.Timer(delay_s, fn, args)
    timer.start()
    return timer


# -- Celery's key layout ------------------------------------------------------------------------
def test_records_use_celerys_keys_and_expiry(
    make_backend: MakeBackend, raw: redis.Redis, prefix: str
) -> None:
    backend = make_backend()
    backend.store("t1", states.SUCCESS, meta("t1"), 60)
    assert raw.get(f"{prefix}celery-task-meta-t1") == meta("t1")
    assert json.loads(meta("t1"))["status"] == "SUCCESS"
    assert 59_000 < raw.pttl(f"{prefix}celery-task-meta-t1") <= 60_000
    # Celery JSON records need no side key for their state.
    assert not raw.exists(f"{prefix}celeriac-task-state-t1")
    backend.store("celery-taskset-meta-g1", states.SUCCESS, b'{"result": []}', None)
    assert raw.get(f"{prefix}celery-taskset-meta-g1") == b'{"result": []}'
    assert raw.pttl(f"{prefix}celery-taskset-meta-g1") == -1
    assert backend.get("celery-taskset-meta-g1") == b'{"result": []}'


def test_global_keyprefix(make_backend: MakeBackend, raw: redis.Redis, prefix: str) -> None:
    backend = make_backend(global_keyprefix=f"{prefix}app1:")
    backend.store("t1", states.SUCCESS, meta("t1"), None)
    assert raw.exists(f"{prefix}app1:celery-task-meta-t1")
    assert backend.incr("chord-counter", 2, 60) == 2
    assert raw.get(f"{prefix}app1:chord-counter") == b"2"


def test_reads_records_celery_wrote(
    make_backend: MakeBackend, raw: redis.Redis, prefix: str
) -> None:
    record = json.dumps({"status": "FAILURE", "result": {"exc_type": "ValueError"}, "task_id": "c"})
    raw.set(f"{prefix}celery-task-meta-c", record)
    backend = make_backend()
    assert backend.get_state("c") == "FAILURE"
    assert backend.wait("c", 0) == record.encode()


def test_payload_state() -> None:
    assert payload_state(meta("x", states.STARTED)) == "STARTED"
    assert payload_state(b'{"result": 1, "status": "SUCCESS"}') == "SUCCESS"
    assert payload_state(b"\x80\x04pickle") is None
    assert payload_state(b"{not json") is None


def test_state_of_non_json_records(make_backend: MakeBackend) -> None:
    backend = make_backend()
    backend.store("t1", states.STARTED, b"\x80pickled-started", None)
    assert backend.get_state("t1") == states.STARTED
    timer = later(0.1, backend.store, "t1", states.SUCCESS, b"\x80pickled-done", None)
    try:
        assert backend.wait("t1", 5) == b"\x80pickled-done"
    finally:
        timer.join()
    backend.forget("t1")
    assert backend.get_state("t1") is None


def test_only_ready_states_are_published(
    make_backend: MakeBackend, raw: redis.Redis, prefix: str
) -> None:
    pubsub = raw.pubsub()
    try:
        pubsub.subscribe(f"{prefix}celery-task-meta-t1")
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        backend = make_backend()
        backend.store("t1", states.STARTED, meta("t1", states.STARTED), None)
        backend.store("t1", states.SUCCESS, meta("t1"), None)
        message = pubsub.get_message(timeout=1)
        assert message is not None and message["data"] == meta("t1")
        assert pubsub.get_message(timeout=0.1) is None
    finally:
        pubsub.close()


# -- reading ------------------------------------------------------------------------------------
def test_get_many_is_one_mget_in_order(make_backend: MakeBackend) -> None:
    backend = make_backend()
    backend.store_many([(f"t{i}", states.SUCCESS, meta(f"t{i}")) for i in range(5)], 60)
    client = backend._conn.client
    calls: list[tuple[Any, ...]] = []
    original = client.execute_command

    def spy(*args: Any, **options: Any) -> Any:
        calls.append(args)
        return original(*args, **options)

    client.execute_command = spy  # type: ignore[method-assign]
    got = backend.get_many(["t3", "nope", "t0", "t3"])
    assert got == [meta("t3"), None, meta("t0"), meta("t3")]
    assert [c[0] for c in calls] == ["MGET"]


def test_incr_expiry_and_persist(make_backend: MakeBackend, raw: redis.Redis, prefix: str) -> None:
    backend = make_backend()
    assert backend.incr("c", 3, 60) == 3
    assert 59_000 < raw.pttl(f"{prefix}c") <= 60_000
    assert backend.incr("c", 1, None) == 4
    assert raw.pttl(f"{prefix}c") == -1
    backend.delete_counter("c")
    assert not raw.exists(f"{prefix}c")
    assert backend.cleanup() == 0


# -- waiting ------------------------------------------------------------------------------------
def test_wait_wakes_on_store_without_polling(
    make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celeriac._redis import waiter

    reader, writer = make_backend(), make_backend()
    sent: list[tuple[Any, ...]] = []
    pack = waiter.pack_commands

    def counting(commands: Any) -> bytes:
        sent.extend(commands)
        return pack(commands)

    monkeypatch.setattr(waiter, "pack_commands", counting)
    timer = later(0.5, writer.store, "t1", states.SUCCESS, meta("t1"), None)
    try:
        started = time.monotonic()
        assert reader.wait("t1", 10) == meta("t1")
        elapsed = time.monotonic() - started
    finally:
        timer.join()
    assert 0.45 <= elapsed < 2
    # One look, in the same write as the subscription: the rest came by notification.
    names = [command[0] for command in sent]
    assert names.count("MGET") == 1
    assert names.index("SUBSCRIBE") < names.index("MGET")


def test_waiters_hand_the_connection_on(make_backend: MakeBackend) -> None:
    """Whichever waiter reads the connection leaves once its own record came (or its time ran
    out); the others still get theirs, stored one by one in the reverse order of waiting."""
    reader, writer = make_backend(), make_backend()
    task_ids = [f"h{i}" for i in range(6)]
    results: dict[str, bytes | None] = {}

    def wait(task_id: str, timeout_s: float) -> None:
        results[task_id] = reader.wait(task_id, timeout_s)

    threads = [threading.Thread(target=wait, args=(t, 10)) for t in task_ids]
    threads.append(threading.Thread(target=wait, args=("never", 0.2)))
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    time.sleep(0.3)  # the "never" waiter, which may be the reader, has left
    for task_id in reversed(task_ids):
        writer.store(task_id, states.SUCCESS, meta(task_id), 60)
        time.sleep(0.05)
    for thread in threads:
        thread.join(15)
    assert results == {**{t: meta(t) for t in task_ids}, "never": None}


def test_wait_times_out_with_none(make_backend: MakeBackend) -> None:
    backend = make_backend()
    started = time.monotonic()
    assert backend.wait("never", 0.2) is None
    assert 0.19 <= time.monotonic() - started < 2


def test_many_waiters_share_one_subscriber_connection(
    make_backend: MakeBackend, raw: redis.Redis, prefix: str
) -> None:
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    reader, writer = make_backend(client_name=name), make_backend()
    task_ids = [f"t{i}" for i in range(20)]
    results: dict[str, bytes | None] = {}

    def wait(task_id: str) -> None:
        results[task_id] = reader.wait(task_id, 10)

    threads = [threading.Thread(target=wait, args=(t,)) for t in task_ids]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        subscribers = raw.pubsub_numsub(*(f"{prefix}celery-task-meta-{t}" for t in task_ids))
        if all(count == 1 for _, count in subscribers):
            break
        time.sleep(0.01)
    pubsub_clients = [c for c in raw.client_list(_type="pubsub") if c["name"] == name]
    assert len(pubsub_clients) == 1
    writer.store_many([(t, states.SUCCESS, meta(t)) for t in task_ids], 60)
    for thread in threads:
        thread.join()
    assert results == {t: meta(t) for t in task_ids}


# -- Unix socket and restarts -------------------------------------------------------------------
def test_unix_socket_backend(socket_redis: RedisServer) -> None:
    backend = create_backend(f"unix://{socket_redis.socket_path}?db=2")
    try:
        timer = later(0.1, backend.store, "t1", states.SUCCESS, meta("t1"), 60)
        try:
            assert backend.wait("t1", 5) == meta("t1")
        finally:
            timer.join()
    finally:
        backend.close()


def test_survives_a_redis_restart(private_redis: RedisServer) -> None:
    backend = create_backend(private_redis.url, FAST_FAIL)
    writer = create_backend(private_redis.url, FAST_FAIL)
    try:
        backend.store("t1", states.SUCCESS, meta("t1"), 60)
        # A waiter subscribed before the restart still gets a result stored after it.
        waited: list[bytes | None] = []
        waiter = threading.Thread(target=lambda: waited.append(backend.wait("t2", 20)))
        waiter.start()
        time.sleep(0.2)
        private_redis.stop()
        for call in (
            lambda: backend.get("t1"),
            lambda: writer.store("t3", states.SUCCESS, meta("t3"), 60),
        ):
            started = time.monotonic()
            with pytest.raises(TransportError, match="unreachable"):
                call()
            assert time.monotonic() - started < 5
        private_redis.start()
        assert backend.get("t1") is None  # nothing was persisted
        deadline = time.monotonic() + 10
        while not waited and time.monotonic() < deadline:
            # Stores may land before the listener has subscribed again; the waiter reads the
            # key after resubscribing, so either way it must return.
            writer.store("t2", states.SUCCESS, meta("t2"), 60)
            waiter.join(0.2)
        waiter.join(5)
        assert waited == [meta("t2")]
        assert backend.incr("k", 1, 60) == 1
    finally:
        backend.close()
        writer.close()
