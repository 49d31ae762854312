"""Events from real workers, on every broker with broadcast (memory://: a worker thread of this
process; SQLite and Redis: a worker process): every event type arrives with Celery's field
names, ``State`` follows them, and a worker with events off sends nothing."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from celeriac.events import EventReceiver
from tests.events.support import (
    COMMON,
    FIELDS,
    TASKS,
    ThreadWorker,
    collect,
    of,
)
from tests.support.services import backend_beside, broker_url
from tests.worker.support import start_worker, task_module, worker_code

pytestmark = pytest.mark.slow


@pytest.fixture(params=["memory", "sqlite", "redis", "amqp", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    found: str = request.param
    return found


@pytest.fixture
def evtasks(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with broker_url(kind, tmp_path) as url:
        backend = backend_beside(kind, url, tmp_path)
        yield from task_module("evtasks", TASKS, tmp_path, monkeypatch,
                               {"EVTASKS_URL": url, "EVTASKS_BACKEND": backend})


class Running:
    """A worker with events on or off: a process (SQLite, Redis) or a thread (memory)."""

    def __init__(self, kind: str, mod: Any, tmp_path: Path, send_events: bool) -> None:
        self.hostname = f"ev-{kind}@test"
        options = {"hostname": self.hostname, "pool": "threads", "concurrency": 2,
                   "send_events": send_events}
        self.thread: ThreadWorker | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp_path = tmp_path
        if kind == "memory":
            self.thread = ThreadWorker(mod.app, **options).start()
        else:
            self.proc = start_worker(tmp_path, worker_code("evtasks", **options))

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(30)
            assert code == 0, (self.tmp_path / "worker.log").read_text()


def _check_fields(event: dict[str, Any]) -> None:
    missing = (COMMON | FIELDS[event["type"]]) - set(event)
    assert not missing, (event["type"], missing, event)


def test_every_event_type_arrives_with_celerys_fields(
    evtasks: Any, kind: str, tmp_path: Path
) -> None:
    mod = evtasks
    mod.app.conf.task_send_sent_event = True
    state = mod.app.events.State()
    with mod.app.connection() as conn, \
            mod.app.events.Receiver(conn, handlers={"*": state.event}) as receiver:
        assert isinstance(receiver, EventReceiver)
        ok = mod.add.delay(2, 3)
        failing = mod.boom.delay()
        retried = mod.flaky.delay()
        refused = mod.refuse.delay()
        expired = mod.add.apply_async((1, 1), expires=datetime.now(UTC) - timedelta(seconds=5))
        revoked = mod.add.apply_async((4, 4))
        revoked.revoke()
        worker = Running(kind, mod, tmp_path, send_events=True)
        try:
            wanted = [
                ("task-sent", ok.id), ("task-received", ok.id), ("task-started", ok.id),
                ("task-succeeded", ok.id), ("task-failed", failing.id),
                ("task-retried", retried.id), ("task-succeeded", retried.id),
                ("task-rejected", refused.id), ("task-revoked", expired.id),
                ("task-revoked", revoked.id), ("worker-online", None),
                ("worker-heartbeat", None),
            ]
            events = collect(receiver, lambda got: all(of(got, t, u) for t, u in wanted))
        finally:
            worker.stop()
        events += collect(receiver, lambda got: bool(of(got, "worker-offline")))
    for event in events:
        _check_fields(event)
    assert {e["type"] for e in events} == set(FIELDS)

    sent = of(events, "task-sent", ok.id)[0]
    assert (sent["name"], sent["queue"], sent["routing_key"]) == (
        "evtasks.add", "celery", "celery")
    received = of(events, "task-received", ok.id)[0]
    assert (received["name"], received["kwargs"]) == ("evtasks.add", "{}")
    assert "2, 3" in sent["args"] and "2, 3" in received["args"]
    assert received["hostname"] == worker.hostname
    assert of(events, "task-succeeded", ok.id)[0]["result"] == "5"
    assert "ValueError" in of(events, "task-failed", failing.id)[0]["exception"]
    assert "Traceback" in of(events, "task-failed", failing.id)[0]["traceback"]
    assert of(events, "task-rejected", refused.id)[0]["requeue"] is False
    gone = of(events, "task-revoked", expired.id)[0]
    assert (gone["expired"], gone["terminated"]) == (True, False)
    assert of(events, "task-revoked", revoked.id)[0]["expired"] is False
    online = of(events, "worker-online")[0]
    assert (online["sw_ident"], online["freq"]) == ("celeriac", 2.0)
    assert len(online["loadavg"]) == 3
    assert of(events, "worker-offline")[-1]["processed"] >= 5

    # State followed the task and the worker.
    task = state.tasks[ok.id]
    assert (task.name, task.state, task.result) == ("evtasks.add", states.SUCCESS, "5")
    assert task.received and task.started and task.succeeded
    assert task.received <= task.started <= task.succeeded
    assert task.worker is not None and task.worker.hostname == worker.hostname
    assert state.tasks[failing.id].state == states.FAILURE
    assert state.tasks[retried.id].state == states.SUCCESS
    assert state.tasks[refused.id].state == states.REJECTED
    assert state.tasks[expired.id].state == states.REVOKED
    assert "evtasks.add" in state.task_types()
    assert {uuid for uuid, _ in state.tasks_by_type("evtasks.add")} >= {ok.id, expired.id}
    node = state.workers[worker.hostname]
    assert node.sw_ident == "celeriac"
    assert not node.alive  # worker-offline came last
    assert worker.hostname not in {w.hostname for w in state.alive_workers()}


def test_a_worker_with_events_off_sends_nothing(
    evtasks: Any, kind: str, tmp_path: Path
) -> None:
    mod = evtasks
    with mod.app.events.Receiver(mod.app.connection()) as receiver:
        worker = Running(kind, mod, tmp_path, send_events=False)
        try:
            assert mod.add.delay(20, 22).get(timeout=30) == 42
            with pytest.raises(TimeoutError):
                receiver.capture(limit=1, timeout=1.5)
        finally:
            worker.stop()
        with pytest.raises(TimeoutError):
            receiver.capture(limit=1, timeout=1.0)


def test_the_state_shows_a_live_worker(evtasks: Any, kind: str, tmp_path: Path) -> None:
    mod = evtasks
    state = mod.app.events.State()
    with mod.app.events.Receiver(handlers={"*": state.event}) as receiver:
        worker = Running(kind, mod, tmp_path, send_events=True)
        try:
            collect(receiver, lambda got: bool(of(got, "worker-heartbeat")))
            assert [w.hostname for w in state.alive_workers()] == [worker.hostname]
        finally:
            worker.stop()


def test_events_switch_on_and_off_at_run_time(evtasks: Any, kind: str, tmp_path: Path) -> None:
    mod = evtasks
    with mod.app.events.Receiver(mod.app.connection()) as receiver:
        worker = Running(kind, mod, tmp_path, send_events=False)
        try:
            assert mod.add.delay(1, 1).get(timeout=30) == 2
            replies = mod.app.control.enable_events(destination=[worker.hostname], reply=True,
                                                    timeout=10)
            assert replies == [{worker.hostname: {"ok": "task events enabled"}}]
            collect(receiver, lambda got: bool(of(got, "worker-online")))
            on = mod.add.delay(2, 2)
            assert on.get(timeout=30) == 4
            events = collect(receiver, lambda got: bool(of(got, "task-succeeded", on.id)))
            assert of(events, "task-received", on.id) and of(events, "task-started", on.id)

            mod.app.control.disable_events(destination=[worker.hostname], reply=True, timeout=10)
            off = mod.add.delay(3, 3)
            assert off.get(timeout=30) == 6
            late: list[dict[str, Any]] = []
            with pytest.raises(TimeoutError):
                for event in receiver.itercapture(timeout=1.5):
                    late.append(event)
            assert not [e for e in late if e.get("uuid") == off.id]
        finally:
            worker.stop()


def test_a_capture_with_wakeup_gets_a_heartbeat_at_once(app: Any) -> None:
    running = ThreadWorker(app, hostname="sleepy@test", send_events=True)
    running.events.freq_s = 3600.0  # no heartbeat of its own during the test
    with app.events.Receiver(app.connection()) as receiver:
        running.start()
        try:
            collect(receiver, lambda got: bool(of(got, "worker-online")))
            with pytest.raises(TimeoutError):
                receiver.capture(limit=1, timeout=1.5, wakeup=False)
            woken = collect_woken(receiver)
        finally:
            running.stop()
    assert woken["type"] == "worker-heartbeat" and woken["hostname"] == "sleepy@test"


def collect_woken(receiver: EventReceiver) -> dict[str, Any]:
    for event in receiver.itercapture(timeout=10, wakeup=True):
        if event["type"] == "worker-heartbeat":
            return event
    raise AssertionError("no heartbeat")


def test_a_terminated_task_sends_task_revoked_with_the_signal(app: Any) -> None:
    started = threading.Event()

    @app.task
    def spin() -> str:
        started.set()
        for _ in range(600):
            time.sleep(0.05)
        return "finished"

    running = ThreadWorker(app, hostname="term@test", send_events=True)
    with app.events.Receiver(app.connection()) as receiver:
        running.start()
        try:
            result = spin.delay()
            assert started.wait(20)
            result.revoke(terminate=True, signal="SIGTERM")
            events = collect(receiver, lambda got: bool(of(got, "task-revoked", result.id)))
        finally:
            running.stop()
    revoked = of(events, "task-revoked", result.id)[0]
    _check_fields(revoked)
    assert (revoked["terminated"], revoked["signum"], revoked["expired"]) == (
        True, signal.SIGTERM, False)
    assert of(events, "task-started", result.id)
