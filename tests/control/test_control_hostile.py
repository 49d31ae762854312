"""Bad input on the control channel never disturbs a worker (issue 11, item 6): raw bytes,
wrong shapes, unknown commands and bad arguments get an error reply when the request names a
reply channel, a log line otherwise, and the worker goes on answering and running tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from celeriac import Celery, mailbox
from celeriac.worker import Worker
from celeriac.worker.control import COMMANDS
from tests.control.conftest import WorkerFactory
from tests.worker.support import wait_until

W1 = "w1@test"

GARBAGE = [
    b"",
    b"\x00\xff\xfe not json at all",
    b"[1, 2, 3]",
    b'"just a string"',
    b'{"method": 42}',
    b'{"method": "../../etc/passwd"}',
    b'{"method": "__class__"}',
    b'{"method": "ping", "arguments": [1, 2]}',
    b'{"method": "ping", "destination": {"a": 1}}',
    b'{"method": "ping", "pattern": ["("]}',
    b'{"method": "ping", "pattern": "(unclosed"}',
    b'{"method": "ping", "reply_to": "celeriac.events"}',
    orjson.dumps({"method": "ping", "arguments": {"x": "y" * (2 << 20)}}),
    b'{"method": "revoke", "arguments": {"task_id": null}}',
    b'{"method": "rate_limit", "arguments": {"task_name": ["a"], "rate_limit": {}}}',
    b'{"method": "pool_grow", "arguments": {"n": "lots"}}',
    b'{"method": "time_limit", "arguments": {"task_name": "x", "soft": "soon"}}',
    b'{"method": "query_task", "arguments": {"ids": 5}}',
    b'{"method": "registered", "arguments": {"taskinfoitems": [1, null, "__dict__"]}}',
    b'{"method": "add_consumer", "arguments": {"queue": {"evil": true}}}',
    b'{"method": "ping", "arguments": {"unexpected": 1}}',
]


@pytest.fixture
def running_worker(app: Celery) -> Iterator[Worker]:
    """A threads worker on the test app's memory:// broker, in a thread of this process."""

    @app.task(name="hostile.add")
    def add(x: int, y: int) -> int:
        return x + y

    worker = Worker(app, pool="threads", concurrency=2, hostname=W1,
                    install_signal_handlers=False)
    thread = threading.Thread(target=worker.start, daemon=True)
    thread.start()
    assert app.control.wait_for_workers(1, timeout_s=10) == 1
    yield worker
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()


def _request(app: Celery, payload: bytes, timeout_s: float = 2.0) -> list[Any]:
    """Broadcast raw ``payload`` and collect any replies to the reply channel it names."""
    replies: list[Any] = []
    channel = None
    try:
        body = orjson.loads(payload)
        channel = body.get("reply_to") if isinstance(body, dict) else None
    except orjson.JSONDecodeError:
        pass
    if not isinstance(channel, str) or not channel.startswith(mailbox.REPLY_PREFIX):
        app.broker.broadcast(mailbox.CONTROL_CHANNEL, payload)
        return replies
    with app.broker.subscribe(channel) as sub:
        app.broker.broadcast(mailbox.CONTROL_CHANNEL, payload)
        for raw in sub.get(timeout_s):
            replies.append(mailbox.decode_reply(raw))
    return replies


def test_garbage_on_the_channel_leaves_the_worker_answering(
    app: Celery, running_worker: Worker
) -> None:
    for payload in GARBAGE:
        app.broker.broadcast(mailbox.CONTROL_CHANNEL, payload)
    assert app.control.ping([W1], timeout=5) == [{W1: {"ok": "pong"}}]
    assert app.send_task("hostile.add", (2, 3)).get(timeout=10) == 5
    assert running_worker.control is not None and running_worker.control.clock > 0


#: (request fields, the error reply's start) for requests that name a reply channel
BAD_REQUESTS = [
    ({"method": 42}, "malformed control method"),
    ({"method": "../../etc/passwd"}, "malformed control method"),
    ({"method": "__class__"}, "No such control command"),
    ({"method": "ping", "arguments": [1, 2]}, "control arguments must be an object"),
    ({"method": "ping", "destination": {"a": 1}}, "control destination must be a list"),
    ({"method": "ping", "pattern": ["("]}, "control pattern must be a string"),
    ({"method": "ping", "pattern": "(unclosed"}, "control pattern is not a regular expression"),
    ({"method": "ping", "arguments": {"unexpected": 1}}, "bad arguments for ping"),
    ({"method": "revoke", "arguments": {"task_id": None}}, "revoke needs a task id"),
    ({"method": "rate_limit", "arguments": {"task_name": ["a"], "rate_limit": {}}},
     "task_name must be a string"),
    ({"method": "pool_grow", "arguments": {"n": "lots"}}, "not a number"),
    ({"method": "time_limit", "arguments": {"task_name": "hostile.add", "soft": "soon"}},
     "time limits must be numbers"),
    ({"method": "add_consumer", "arguments": {"queue": {"evil": True}}},
     "queue must be a non-empty string"),
    ({"method": "revoke", "arguments": {"task_id": "x", "terminate": True, "signal": "SIGSTOP"}},
     "revoke(terminate=True) cannot send signal"),
]


@pytest.mark.parametrize(("fields", "error"), BAD_REQUESTS)
def test_a_bad_request_with_a_reply_channel_gets_an_error_reply(
    app: Celery, running_worker: Worker, fields: dict[str, Any], error: str
) -> None:
    body = {"ticket": "t-1", "reply_to": mailbox.REPLY_PREFIX + "hostile", **fields}
    if "destination" not in fields:
        body["destination"] = [W1]
    (reply,) = _request(app, orjson.dumps(body))
    assert reply.ticket == "t-1" and reply.hostname == W1
    assert set(reply.reply) == {"error"} and reply.reply["error"].startswith(error), reply
    assert app.control.ping([W1], timeout=5) == [{W1: {"ok": "pong"}}]


def test_an_oversized_request_is_refused_unread(app: Celery, running_worker: Worker) -> None:
    body = {"method": "ping", "ticket": "t", "reply_to": mailbox.REPLY_PREFIX + "big",
            "arguments": {"x": "y" * mailbox.MAX_REQUEST_BYTES}}
    assert _request(app, orjson.dumps(body), timeout_s=1.0) == []
    assert app.control.ping([W1], timeout=5) == [{W1: {"ok": "pong"}}]


def test_registered_skips_attribute_names_it_cannot_read(
    app: Celery, running_worker: Worker
) -> None:
    (reply,) = app.control.broadcast(
        "registered", {"taskinfoitems": [1, None, "__dict__", "app", "run", "max_retries"]},
        destination=[W1], reply=True, timeout=5)
    # (shared tasks other test modules defined join every app of this process)
    assert [n for n in reply[W1] if n.startswith("hostile.")] == ["hostile.add [max_retries=3]"]


def test_unknown_command_gets_an_error_reply(app: Celery, running_worker: Worker) -> None:
    assert app.control.broadcast("no_such_command", destination=[W1], reply=True,
                                 timeout=5) == [{W1: {"error": "No such control command: "
                                                             "no_such_command"}}]
    assert app.control.broadcast("ping", arguments={"bogus": 1}, destination=[W1], reply=True,
                                 timeout=5)[0][W1]["error"].startswith("bad arguments for ping")


def test_replies_never_go_to_a_channel_that_is_not_a_reply_channel(
    app: Celery, running_worker: Worker
) -> None:
    with app.broker.subscribe("celeriac.events") as events:
        app.broker.broadcast(mailbox.CONTROL_CHANNEL, orjson.dumps(
            {"method": "ping", "ticket": "x", "reply_to": "celeriac.events"}))
        assert app.control.ping([W1], timeout=5) == [{W1: {"ok": "pong"}}]
        assert all(b'"ticket":"x"' not in raw for raw in events.get(0.3))


def test_every_command_survives_being_called_without_arguments(
    app: Celery, running_worker: Worker
) -> None:
    """No command crashes the listener, whatever is missing (shutdown is left out: it works)."""
    for name in sorted(set(COMMANDS) - {"shutdown"}):
        (reply,) = app.control.broadcast(name, destination=[W1], reply=True, timeout=5)
        assert W1 in reply
    assert app.control.ping([W1], timeout=5) == [{W1: {"ok": "pong"}}]
    assert app.send_task("hostile.add", (1, 1)).get(timeout=10) == 2


def test_a_flood_of_control_requests_does_not_stall_tasks(
    app: Celery, running_worker: Worker
) -> None:
    results = [app.send_task("hostile.add", (i, i)) for i in range(50)]
    for _ in range(300):
        app.control.broadcast("stats", destination=[W1])
    wait_until(lambda: all(r.ready() for r in results), timeout_s=30)
    assert [r.get() for r in results] == [2 * i for i in range(50)]


def test_the_cli_refuses_an_unknown_action(app: Celery) -> None:
    from click.testing import CliRunner

    from celeriac.cli.main import run_app_main

    del CliRunner  # run_app_main prints click's usage error and returns its status
    assert run_app_main(app, ["control", "frobnicate"]) == 2
    assert run_app_main(app, ["inspect", "frobnicate"]) == 2
    assert run_app_main(app, ["control", "rate_limit", "only.one.arg"]) == 2
    assert run_app_main(app, ["control", "pool_grow", "many"]) == 2


_ = WorkerFactory  # the process-based fixtures live beside this in-process suite
