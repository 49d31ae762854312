"""The dashboard's collector with real workers (memory://: a worker thread; SQLite and Redis: a
worker process): tasks land in the history store the app's result backend names, workers go
online and offline as Flower says, subscribers see every event, and neither hostile payloads, a
failing store nor a broker outage stop it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers import memory as memory_broker
from celeriac.coordination import memory as memory_store
from celeriac.dashboard.collector import Collector
from celeriac.dashboard.history import (
    HistoryStore,
    MemoryHistory,
    default_history_url,
    open_history,
)
from celeriac.events import EVENTS_CHANNEL
from tests.events.support import wait_for
from tests.events.test_worker_events import Running, evtasks, kind  # noqa: F401 (fixtures)
from tests.redis.support import (
    HOST,
    PORT,
    REDIS_BROKER_DB,
    drop_keys,
    redis_url,
    unique_prefix,
)
from tests.redis.test_publish_blip import Proxy


def _state(history: HistoryStore, task_id: str) -> str | None:
    task = history.task(task_id)
    return None if task is None else task["state"]


@pytest.mark.slow
def test_a_worker_and_its_tasks_reach_the_history(
        kind: str, evtasks: Any,  # noqa: F811 (the fixtures imported above)
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default history file (for memory://) lands here
    url = default_history_url(evtasks.app)
    assert url == ("sqlite:///celeriac-dashboard.db" if kind == "memory"
                   else evtasks.app.result_backend_url)
    history = open_history(url)
    collector = Collector(evtasks.app, history)
    collector.start()
    seen = collector.subscribe()
    worker = Running(kind, evtasks, tmp_path, send_events=True)
    try:
        wait_for(lambda: collector.workers().get(worker.hostname, {}).get("status"), 30)
        info = collector.workers()[worker.hostname]
        assert info["hostname"] == worker.hostname and info["freq"] == 2.0
        assert info["sw_ident"] and info["sw_sys"] and isinstance(info["pid"], int)
        assert isinstance(info["timestamp"], float) and info["active"] is not None
        ok, bad = evtasks.add.delay(2, 3), evtasks.boom.delay()
        wait_for(lambda: _state(history, ok.id) == "SUCCESS"
                 and _state(history, bad.id) == "FAILURE", 30)
    finally:
        worker.stop()
    wait_for(lambda: not collector.workers()[worker.hostname]["status"], 10)  # worker-offline
    collector.stop()
    assert not collector.running
    task = history.task(ok.id)
    assert task is not None
    assert (task["name"], task["result"]) == ("evtasks.add", "5")
    assert "2, 3" in task["args"]  # the repr the worker sends
    assert task["worker"] == worker.hostname and task["runtime"] is not None
    assert task["received"] <= task["started"] <= task["succeeded"]
    failed = history.task(bad.id)
    assert failed is not None and "boom" in failed["exception"] and failed["traceback"]
    types: list[tuple[str, str | None]] = []
    while not seen.empty():
        event = seen.get()
        types.append((event["type"], event.get("uuid")))
    assert ("task-succeeded", ok.id) in types and ("worker-online", None) in types
    before = history.tasks()
    history.close()
    # A dashboard restart: the same store opened again holds the same tasks.
    with open_history(url) as again:
        assert again.tasks() == before and len(before) == 2


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Celery]:
    url = f"memory://collector-{tmp_path.name}"
    found = Celery("collector", broker=url, backend=url)
    yield found
    found.close()
    memory_broker.reset(url)
    memory_store.reset(url)


def _send(app: Celery, hostname: str, type_: str, **fields: Any) -> None:
    with app.events.Dispatcher(app.connection(), hostname=hostname) as dispatcher:
        dispatcher.send(type_, flush=True, **fields)


def test_workers_go_offline_as_flower_says(app: Celery) -> None:
    collector = Collector(app, MemoryHistory())
    collector.start()
    try:
        _send(app, "quiet@x", "worker-heartbeat", freq=0.2, active=1, processed=7,
              loadavg=[0.1, 0.2, 0.3], sw_ident="py-celeriac", sw_ver="1", sw_sys="Linux")
        _send(app, "leaving@x", "worker-online", freq=60.0)
        wait_for(lambda: {"quiet@x", "leaving@x"} <= set(collector.workers()))
        quiet = collector.workers()["quiet@x"]
        assert (quiet["active"], quiet["processed"], quiet["loadavg"]) == (1, 7, [0.1, 0.2, 0.3])
        assert collector.workers()["leaving@x"]["status"] is True
        _send(app, "leaving@x", "worker-offline", freq=60.0)
        wait_for(lambda: collector.workers()["leaving@x"]["status"] is False)
        # no heartbeat for freq * 2 seconds
        wait_for(lambda: collector.workers()["quiet@x"]["status"] is False, 5)
        _send(app, "quiet@x", "worker-heartbeat", freq=60.0)
        wait_for(lambda: collector.workers()["quiet@x"]["status"] is True)
    finally:
        collector.stop()


def test_hostile_payloads_do_not_stop_it(app: Celery) -> None:
    history = MemoryHistory()
    collector = Collector(app, history)
    collector.start()
    try:
        for payload in (b"not json", b"[1, 2, 3]", b'{"type": "task-sent"}', b"\xff\xfe",
                        b'[{"type": "task-received", "uuid": "' + b"u" * 10_000 +
                        b'", "hostname": "h", "timestamp": 1.0}]',
                        b'[{"type": "task-received", "uuid": "odd", "hostname": "h", '
                        b'"timestamp": 1e300, "name": {"x": 1}, "args": [1], "clock": "c"}]'):
            app.broker.broadcast(EVENTS_CHANNEL, payload)
        _send(app, "w@x", "task-succeeded", uuid="good", result="1", runtime=0.1)
        wait_for(lambda: history.task("good") is not None)
        assert collector.running
        assert history.task("good")["state"] == "SUCCESS"  # type: ignore[index]
        wait_for(lambda: history.task("odd") is not None)
        odd = history.task("odd")
        assert odd is not None and (odd["name"], odd["args"]) == ('{"x":1}', "[1]")
        assert history.count() == 2  # the 10 kB uuid was dropped
    finally:
        collector.stop()


class FlakyHistory(MemoryHistory):
    """A store whose first writes fail (a locked database, Redis gone)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def _record(self, events: Any) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("store unavailable")
        return super()._record(events)


def test_a_failing_store_keeps_the_events_for_the_next_write(app: Celery) -> None:
    history = FlakyHistory(failures=3)
    collector = Collector(app, history)
    collector.FLUSH_S = 0.05
    collector.start()
    try:
        _send(app, "w@x", "task-received", uuid="kept", name="proj.add")
        wait_for(lambda: history.failures == 0 and history.task("kept") is not None)
        assert history.task("kept")["name"] == "proj.add"  # type: ignore[index]
    finally:
        collector.stop()


def test_stop_writes_what_it_holds(app: Celery) -> None:
    history = MemoryHistory()
    collector = Collector(app, history)
    collector.FLUSH_S = 30.0  # no flush while running
    collector.start()
    seen = collector.subscribe()
    _send(app, "w@x", "task-received", uuid="last", name="proj.add")
    seen.get(timeout=10)
    assert history.task("last") is None
    collector.stop()
    assert history.task("last") is not None


@pytest.mark.slow
def test_it_comes_back_after_a_broker_outage(tmp_path: Path) -> None:
    """The collector reaches Redis through a proxy that drops every connection for 2 s; a
    sender on a direct connection keeps sending. Events after the outage are recorded."""
    redis_url(REDIS_BROKER_DB)  # skips (fails in CI) without a server
    prefix = unique_prefix()
    direct_url = f"redis://{HOST}:{PORT}/{REDIS_BROKER_DB}?global_keyprefix={prefix}"
    proxy = Proxy()
    watched = Celery("watched", broker=f"redis://127.0.0.1:{proxy.port}/{REDIS_BROKER_DB}"
                                       f"?global_keyprefix={prefix}")
    sender = Celery("sender", broker=direct_url)
    history = MemoryHistory()
    collector = Collector(watched, history)
    collector.RESUBSCRIBE_S = 1.0
    collector.start()
    try:
        _send(sender, "w@x", "task-received", uuid="before", name="proj.add")
        wait_for(lambda: history.task("before") is not None)
        proxy.down()
        time.sleep(2.0)
        proxy.up()
        deadline = time.monotonic() + 30
        n = 0
        while history.count(search="uuid:after") == 0:
            assert time.monotonic() < deadline, "no event recorded after the outage"
            _send(sender, "w@x", "task-received", uuid=f"after{n}", name="proj.add")
            n += 1
            time.sleep(0.3)
        assert collector.running
    finally:
        collector.stop()
        watched.close()
        sender.close()
        proxy.close()
        drop_keys(direct_url)


def test_a_silently_dropped_subscription_is_replaced(app: Celery) -> None:
    """A pub/sub connection can die without an error (a broker restart behind a proxy): after
    RESUBSCRIBE_S without any event the collector subscribes again."""
    history = MemoryHistory()
    collector = Collector(app, history)
    collector.RESUBSCRIBE_S = 0.5
    collector.start()
    try:
        receiver = collector._receiver
        assert receiver is not None and receiver._subscription is not None
        receiver._subscription.close()  # no error: just no more events
        deadline = time.monotonic() + 20
        n = 0
        while history.count() == 0:
            assert time.monotonic() < deadline, "the collector never subscribed again"
            _send(app, "w@x", "task-received", uuid=f"again{n}", name="proj.add")
            n += 1
            time.sleep(0.2)
        assert collector._receiver is not receiver
    finally:
        collector.stop()
