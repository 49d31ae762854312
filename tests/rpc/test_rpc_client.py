"""rpc:// against the real RabbitMQ, both sides in this process: the caller sends (its message
gets ``reply_to``), a second backend plays the worker (it learns the ``reply_to`` and publishes
the records), and the caller's get() reads its reply queue. Hostile messages are published
straight into a caller's reply queue with py-amqp."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, states
from celeriac.backends.rpc import RPCBackend, is_reply_queue
from celeriac.exceptions import ImproperlyConfigured, TimeoutError, TransportError
from celeriac.result import AsyncResult, GroupResult
from celeriac.result_meta import build_meta, encode_meta
from tests.rpc.support import amqp_url, queue_exists, raw_publish
from tests.support.workers import REPO_ROOT, wait_until


def make_app(**conf: Any) -> Celery:
    app = Celery("rpc-client", broker="memory://rpc-client", backend="rpc://")
    app.conf.result_backend_transport_options = {"broker_url": amqp_url()}
    app.conf.update(conf)
    return app


@pytest.fixture
def app() -> Iterator[Celery]:
    app = make_app()
    yield app
    app.close()


@pytest.fixture
def worker_side() -> Iterator[RPCBackend]:
    backend = RPCBackend("rpc://", options={"broker_url": amqp_url()})
    yield backend
    backend.close()


def send(app: Celery, name: str = "t.add") -> tuple[AsyncResult, str]:
    """Send a task the memory broker keeps; its result and the message's reply_to."""
    prepared = app.prepare_message(name, (1, 2), {}, task_id=None)
    assert not isinstance(prepared, AsyncResult)
    _queue, envelope = prepared
    reply_to = envelope.properties["reply_to"]
    return AsyncResult(envelope.task_id, app=app), reply_to


def reply(worker: RPCBackend, result: AsyncResult, reply_to: str, state: str, value: Any) -> None:
    worker.note_reply_to(result.id, reply_to)
    worker.store_many([(result.id, state, encode_meta(build_meta(result.id, state, value)))],
                      None)


def test_a_sent_message_carries_the_callers_reply_queue(app: Celery) -> None:
    _first, reply_to = send(app)
    _second, again = send(app)
    assert is_reply_queue(reply_to) and again == reply_to
    assert app.backend.reply_queue() == reply_to
    assert queue_exists(reply_to)


def test_get_returns_the_result_and_again_from_the_cache(
    app: Celery, worker_side: RPCBackend
) -> None:
    result, reply_to = send(app)
    assert result.state == states.PENDING
    reply(worker_side, result, reply_to, states.STARTED, None)
    wait_until(lambda: result.state == states.STARTED, 10, "STARTED seen")
    reply(worker_side, result, reply_to, states.SUCCESS, 3)
    assert result.get(timeout=10) == 3
    fresh = AsyncResult(result.id, app=app)  # a second read in the same process
    assert fresh.get(timeout=1) == 3 and fresh.state == states.SUCCESS
    fresh.forget()
    assert AsyncResult(result.id, app=app).state == states.PENDING


def test_a_failure_propagates_with_its_type(app: Celery, worker_side: RPCBackend) -> None:
    result, reply_to = send(app)
    reply(worker_side, result, reply_to, states.FAILURE, KeyError("missing"))
    with pytest.raises(KeyError, match="missing"):
        result.get(timeout=10)
    assert result.get(timeout=1, propagate=False).__class__ is KeyError


def test_get_times_out_cleanly(app: Celery) -> None:
    result, _ = send(app)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        result.get(timeout=0.3)
    assert time.monotonic() - started >= 0.3


def test_results_of_other_tasks_wait_for_their_own_get(
    app: Celery, worker_side: RPCBackend
) -> None:
    sent = [send(app) for _ in range(5)]
    for number, (result, reply_to) in enumerate(sent):
        reply(worker_side, result, reply_to, states.SUCCESS, number)
    # The last one first: the four before it arrive meanwhile and are kept.
    assert sent[-1][0].get(timeout=10) == 4
    assert [result.get(timeout=1) for result, _ in sent] == [0, 1, 2, 3, 4]


def test_two_callers_each_get_only_their_own(worker_side: RPCBackend) -> None:
    one, two = make_app(), make_app()
    try:
        mine, mine_to = send(one)
        theirs, theirs_to = send(two)
        assert mine_to != theirs_to
        reply(worker_side, theirs, theirs_to, states.SUCCESS, "theirs")
        reply(worker_side, mine, mine_to, states.SUCCESS, "mine")
        assert mine.get(timeout=10) == "mine"
        assert theirs.get(timeout=10) == "theirs"
        with pytest.raises(TimeoutError):  # one never sees the other's
            AsyncResult(theirs.id, app=one).get(timeout=0.3)
    finally:
        one.close()
        two.close()


def test_a_late_started_never_hides_the_result(app: Celery, worker_side: RPCBackend) -> None:
    result, reply_to = send(app)
    worker_side.note_reply_to(result.id, reply_to)
    worker_side.store_many([
        (result.id, states.SUCCESS, encode_meta(build_meta(result.id, states.SUCCESS, 1))),
        (result.id, states.STARTED, encode_meta(build_meta(result.id, states.STARTED, None))),
    ], None)
    assert result.get(timeout=10) == 1
    assert AsyncResult(result.id, app=app).state == states.SUCCESS


def test_records_of_unknown_callers_are_dropped(app: Celery, worker_side: RPCBackend) -> None:
    result, _reply_to = send(app)
    # No note_reply_to: the worker does not know where it goes, and drops it.
    worker_side.store(result.id, states.SUCCESS, encode_meta(build_meta(result.id, "SUCCESS", 1)),
                      None)
    # A reply_to that is not a uuid is never used (it could name any queue).
    worker_side.note_reply_to(result.id, "celery")
    worker_side.store(result.id, states.SUCCESS, encode_meta(build_meta(result.id, "SUCCESS", 2)),
                      None)
    with pytest.raises(TimeoutError):
        result.get(timeout=0.3)


def test_hostile_messages_in_the_reply_queue_never_break_get(
    app: Celery, worker_side: RPCBackend, tmp_path: Path
) -> None:
    app.conf.result_backend_transport_options = {"broker_url": amqp_url(),
                                                 "rpc_max_result_bytes": 100_000}
    app.close()
    result, reply_to = send(app)
    marker = tmp_path / "executed"
    json_ct = {"content_type": "application/json", "content_encoding": "utf-8"}
    junk: list[tuple[bytes, dict[str, Any]]] = [
        (b"\x00\xff not json", {**json_ct, "correlation_id": result.id}),
        (b'{"status": "SUCCESS", "result": "forged", "task_id": "other"}',
         {**json_ct, "correlation_id": result.id}),
        (b'{"status": "SUCCESS", "result": "no id"}', json_ct),
        (b'["SUCCESS"]', {**json_ct, "correlation_id": result.id}),
        (b'{"status": 7}', {**json_ct, "correlation_id": result.id}),
        (b'{"status": "SUCCESS", "result": "huge", "pad": "' + b"x" * 200_000 + b'"}',
         {**json_ct, "correlation_id": result.id}),
        (b'{"status": "SUCCESS"}', {**json_ct, "correlation_id": ""}),
        (pickle.dumps(_Exploit(str(marker))),
         {"content_type": "application/x-python-serialize", "correlation_id": result.id}),
    ]
    for body, properties in junk:
        raw_publish(reply_to, body, **properties)
    with pytest.raises(TimeoutError):
        result.get(timeout=0.5)
    assert result.state == states.PENDING
    reply(worker_side, result, reply_to, states.SUCCESS, "real")
    assert result.get(timeout=10) == "real"
    assert not marker.exists()


class _Exploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_a_non_amqp_broker_is_refused_in_one_line() -> None:
    app = Celery("rpc-refused", broker="redis://127.0.0.1:6379/10", backend="rpc://")
    with pytest.raises(ImproperlyConfigured, match=r"rpc:// sends results over an AMQP broker"
                       ) as caught:
        app.send_task("t.add", (1, 2))
    assert "\n" not in str(caught.value)
    app.close()


def test_chords_and_groups_are_refused_with_the_reason(app: Celery) -> None:
    with pytest.raises(ImproperlyConfigured, match="chord"):
        app.backend.incr("chord-unlock-x", 1, None)
    with pytest.raises(ImproperlyConfigured, match="group"):
        app.backend.get("celery-taskset-meta-x")


def test_persistent_results_are_confirmed_and_persistent(app: Celery) -> None:
    worker = RPCBackend("rpc://", options={"broker_url": amqp_url(), "result_persistent": True})
    try:
        sent = [send(app) for _ in range(20)]
        for result, reply_to in sent:
            worker.note_reply_to(result.id, reply_to)
        worker.store_many([(r.id, states.SUCCESS, encode_meta(build_meta(r.id, "SUCCESS", r.id)))
                           for r, _ in sent], None)
        assert worker._confirmed == worker._published == 20  # every one confirmed
        assert [r.get(timeout=10) for r, _ in sent] == [r.id for r, _ in sent]
    finally:
        worker.close()


def test_a_broken_connection_is_one_error_then_it_reconnects(
    app: Celery, worker_side: RPCBackend
) -> None:
    result, reply_to = send(app)
    assert result.state == states.PENDING  # consuming now
    app.backend._conn.transport.sock.shutdown(2)  # type: ignore[attr-defined]
    with pytest.raises(TransportError):
        result.get(timeout=2)
    # The queue went with the connection; the next send declares it again.
    later, reply_to_again = send(app)
    assert reply_to_again == reply_to
    reply(worker_side, later, reply_to_again, states.SUCCESS, "after")
    assert later.get(timeout=10) == "after"


_CALLER = """
import sys, time
from celeriac import Celery
app = Celery("gone", broker="memory://gone", backend="rpc://")
app.conf.result_backend_transport_options = {"broker_url": sys.argv[1]}
print(app.backend.reply_queue(), flush=True)
time.sleep(60)
"""


def test_the_reply_queue_goes_away_with_its_caller(tmp_path: Path) -> None:
    url = amqp_url()
    caller = subprocess.Popen([sys.executable, "-c", _CALLER, url], stdout=subprocess.PIPE,
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        assert caller.stdout is not None
        queue = caller.stdout.readline().decode().strip()
        assert is_reply_queue(queue) and queue_exists(queue)
        caller.kill()  # no goodbye: the broker sees the socket close
        caller.wait()
        wait_until(lambda: not queue_exists(queue), 20, "reply queue deleted")
    finally:
        caller.kill()
        caller.wait()
        if caller.stdout is not None:
            caller.stdout.close()


def test_a_forked_child_has_a_reply_queue_of_its_own(app: Celery) -> None:
    parent_queue = app.backend.reply_queue()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its queue, never run the parent's cleanup
        try:
            os.write(write, str(app.backend.reply_queue()).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_queue = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert is_reply_queue(child_queue) and child_queue != parent_queue
    assert app.backend.reply_queue() == parent_queue


def test_a_chord_is_refused_before_anything_is_sent() -> None:
    app = Celery("rpc-chord", broker=f"memory://rpc-chord-{uuid.uuid4().hex}", backend="rpc://")
    app.conf.result_backend_transport_options = {"broker_url": amqp_url()}
    add: Any = app.signature("t.add")
    try:
        with pytest.raises(ImproperlyConfigured, match=r"(?i)chord"):
            chord([add.clone((1, 1)), add.clone((2, 2))], add.clone((3,))).apply_async()
        with pytest.raises(ImproperlyConfigured, match=r"(?i)chord"):
            (group(add.clone((1, 1)), add.clone((2, 2))) | add.clone((3,))).apply_async()
        with pytest.raises(ImproperlyConfigured, match=r"(?i)chord"):  # a chord later in a chain
            chain(add.clone((1, 1)), chord([add.clone((2,)), add.clone((3,))],
                                           add.clone((4,)))).apply_async()
        assert app.broker.queue_size("celery") == 0
        saved = GroupResult(str(uuid.uuid4()), [AsyncResult(str(uuid.uuid4()), app=app)], app=app)
        with pytest.raises(ImproperlyConfigured, match="save or restore groups"):
            saved.save()
        with pytest.raises(ImproperlyConfigured, match="save or restore groups"):
            GroupResult.restore(saved.id or "", app=app)
    finally:
        app.close()


def test_the_worker_side_publishes_again_after_its_connection_broke(
    app: Celery, worker_side: RPCBackend
) -> None:
    first, reply_to = send(app)
    reply(worker_side, first, reply_to, states.SUCCESS, "before")
    assert first.get(timeout=10) == "before"
    worker_side._conn.transport.sock.shutdown(2)
    second, _ = send(app)
    reply(worker_side, second, reply_to, states.SUCCESS, "after")
    assert second.get(timeout=10) == "after"


def test_reading_before_any_send_connects_but_declares_nothing() -> None:
    backend = RPCBackend("rpc://", options={"broker_url": amqp_url()})
    try:
        assert backend.get_state("celeriac-readiness-probe") is None  # what a worker asks
        assert backend._conn is not None and not backend._declared
        assert not queue_exists(backend._queue)
    finally:
        backend.close()


@pytest.mark.parametrize(("url", "says"), [
    ("amqp://guest:wrong@127.0.0.1:5672//", "refused the login"),
    ("amqp://guest:guest@127.0.0.1:5672/no-such-vhost-{}", "virtual host"),
    ("amqp://guest:guest@127.0.0.1:1//", "connection refused"),
])
def test_a_bad_broker_url_is_one_transport_error_line(url: str, says: str) -> None:
    amqp_url()  # the server must be there for the first two to mean anything
    backend = RPCBackend("rpc://", options={"broker_url": url.format(uuid.uuid4().hex),
                                            "connect_timeout": 2})
    try:
        with pytest.raises(TransportError) as caught:
            backend.reply_queue()
        message = str(caught.value)
        assert says in message and "\n" not in message and "wrong" not in message
    finally:
        backend.close()


def test_many_threads_wait_on_one_caller_connection(app: Celery, worker_side: RPCBackend) -> None:
    sent = [send(app) for _ in range(16)]
    got: dict[str, Any] = {}

    def wait_for(result: AsyncResult) -> None:
        got[result.id] = result.get(timeout=20)

    threads = [threading.Thread(target=wait_for, args=(result,)) for result, _ in sent]
    for thread in threads:
        thread.start()
    for number, (result, reply_to) in enumerate(sent):
        reply(worker_side, result, reply_to, states.SUCCESS, number)
    for thread in threads:
        thread.join(30)
    assert got == {result.id: number for number, (result, _) in enumerate(sent)}


def test_unread_results_are_bounded_in_the_queue_and_the_cache(worker_side: RPCBackend) -> None:
    app = make_app()
    app.conf.result_backend_transport_options = {"broker_url": amqp_url(), "rpc_cache_max": 5}
    try:
        sent = [send(app) for _ in range(8)]
        for number, (result, reply_to) in enumerate(sent):  # nobody reads meanwhile
            reply(worker_side, result, reply_to, states.SUCCESS, number)
        assert sent[-1][0].get(timeout=10) == 7
        assert [r.get(timeout=1) for r, _ in sent[3:]] == [3, 4, 5, 6, 7]
        for result, _ in sent[:3]:  # the oldest went when the queue was full
            assert result.state == states.PENDING
    finally:
        app.close()


def test_a_group_record_in_a_workers_batch_is_dropped_not_raised(
    app: Celery, worker_side: RPCBackend
) -> None:
    result, reply_to = send(app)
    worker_side.note_reply_to(result.id, reply_to)
    group_meta = encode_meta(build_meta("g", states.SUCCESS, []))
    worker_side.store_many([
        ("celery-taskset-meta-g", states.SUCCESS, group_meta),
        (result.id, states.SUCCESS, encode_meta(build_meta(result.id, states.SUCCESS, "kept"))),
    ], None)
    assert result.get(timeout=10) == "kept"
