"""Remote control against real worker processes, on every broker with broadcast (issue 11,
item 2): Celery's inspect and control commands, their reply shapes, and that a worker acts on
them while it runs tasks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from celeriac._utils.urls import mask_url
from celeriac.exceptions import TimeLimitExceeded
from tests.control.conftest import WorkerFactory
from tests.worker.support import wait_until

pytestmark = pytest.mark.slow
W1 = "w1@test"


def ask(ctl: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    """``app.control.inspect(destination=W1).<method>()``: W1's reply only."""
    return getattr(ctl.app.control.inspect(W1, timeout=5), method)(*args, **kwargs)


def test_ping_and_status_answer_live(ctl: Any, spawn: WorkerFactory) -> None:
    spawn()
    assert ctl.app.control.ping([W1], timeout=5) == [{W1: {"ok": "pong"}}]
    assert ctl.app.control.inspect(timeout=0.5).ping() == {W1: {"ok": "pong"}}
    # a node that does not exist does not answer
    assert ctl.app.control.inspect(["nobody@nowhere"], timeout=0.3).ping() is None


def test_active_lists_a_task_running_for_100_ms_with_wall_clock_start(
    ctl: Any, spawn: WorkerFactory, tmp_path: Path
) -> None:
    spawn()
    before = time.time()
    running = ctl.sleepy.delay(3, str(tmp_path))
    wait_until(lambda: (tmp_path / f"started-{running.id}").exists())
    time.sleep(0.1)
    (entry,) = ask(ctl, "active")
    assert entry["id"] == running.id and entry["name"] == "ctlproj.sleepy"
    assert entry["hostname"] == W1 and entry["acknowledged"] is True
    assert before - 1 <= entry["time_start"] <= time.time()
    assert entry["delivery_info"]["routing_key"] == "celery"
    state, info = ask(ctl, "query_task", running.id)[running.id]
    assert state == "active" and info["id"] == running.id


def test_reserved_lists_tasks_waiting_for_a_slot(ctl: Any, spawn: WorkerFactory,
                                                 tmp_path: Path) -> None:
    spawn(concurrency=1, prefetch_multiplier=4)
    first = ctl.sleepy.delay(3, str(tmp_path))
    waiting = [ctl.add.delay(i, i) for i in range(2)]
    wait_until(lambda: (tmp_path / f"started-{first.id}").exists())
    wait_until(lambda: {e["id"] for e in ask(ctl, "reserved")} == {r.id for r in waiting})
    reserved = ask(ctl, "reserved")
    assert all(e["time_start"] is None and e["name"] == "ctlproj.add" for e in reserved)
    answer = ask(ctl, "query_task", [waiting[0].id])
    assert answer[waiting[0].id][0] == "reserved"
    assert ask(ctl, "scheduled") == []
    assert [r.get(timeout=20) for r in waiting] == [0, 2]


def test_registered_stats_queues_conf_clock_report(ctl: Any, spawn: WorkerFactory) -> None:
    spawn(prefetch_multiplier=4)  # a fixed window (the default adapts: test_adaptive_prefetch)
    # (shared tasks other test modules defined join every app of this process: memory://)
    mine = [name for name in ask(ctl, "registered") if name.startswith("ctlproj.")]
    assert mine == ["ctlproj.add", "ctlproj.busy", "ctlproj.sleepy"]
    assert ctl.add.delay(2, 3).get(timeout=20) == 5
    stats = ask(ctl, "stats")
    assert {"broker", "clock", "pid", "pool", "prefetch_count", "rusage", "total",
            "uptime"} <= set(stats)
    assert stats["total"] == {"ctlproj.add": 1}
    assert stats["pool"]["max-concurrency"] == 2 and stats["prefetch_count"] == 8
    (queue,) = ask(ctl, "active_queues")
    assert queue["name"] == "celery" and queue["exchange"]["type"] == "direct"
    conf = ask(ctl, "conf")
    # (a password in the URL is masked, as in Celery's report)
    assert conf["broker_url"] == mask_url(ctl.app.conf.broker_url)
    assert "task_serializer" not in conf  # only settings changed from their defaults
    assert "task_serializer" in ask(ctl, "conf", with_defaults=True)
    assert ask(ctl, "clock")["clock"] > 0
    assert "celeriac:" in ask(ctl, "report")["ok"]


def test_revoke_through_control_drops_a_reserved_task_and_is_listed(
    ctl: Any, spawn: WorkerFactory, tmp_path: Path
) -> None:
    spawn(concurrency=1, prefetch_multiplier=4)
    first = ctl.sleepy.delay(2, str(tmp_path))
    queued = ctl.add.delay(1, 1)
    wait_until(lambda: (tmp_path / f"started-{first.id}").exists())
    wait_until(lambda: [e["id"] for e in ask(ctl, "reserved")] == [queued.id])
    replies = ctl.app.control.revoke(queued.id, destination=[W1], reply=True, timeout=5)
    assert replies == [{W1: {"ok": f"tasks {queued.id} flagged as revoked"}}]
    assert first.get(timeout=20) == 2
    wait_until(lambda: queued.state == "REVOKED")
    assert queued.id in ask(ctl, "revoked")


def test_revoke_terminate_stops_a_running_task_at_once(
    ctl: Any, spawn: WorkerFactory, tmp_path: Path
) -> None:
    spawn(pool="prefork", concurrency=1)
    running = ctl.sleepy.delay(30, str(tmp_path))
    wait_until(lambda: (tmp_path / f"started-{running.id}").exists())
    replies = ctl.app.control.revoke(running.id, terminate=True, signal="SIGKILL",
                                     destination=[W1], reply=True, timeout=5)
    assert replies == [{W1: {"ok": f"tasks {running.id} flagged as revoked"}}]
    wait_until(lambda: running.state == "REVOKED", timeout_s=10)
    assert ctl.add.delay(20, 22).get(timeout=20) == 42


def test_rate_limit_and_time_limit_commands(ctl: Any, spawn: WorkerFactory) -> None:
    spawn()
    control = ctl.app.control
    assert control.rate_limit("ctlproj.add", "100/s", destination=[W1], reply=True,
                              timeout=5) == [{W1: {"ok": "new rate limit set successfully"}}]
    (reply,) = control.rate_limit("no.such.task", "1/s", destination=[W1], reply=True,
                                  timeout=5)
    assert "unknown task" in reply[W1]["error"]
    assert control.time_limit("ctlproj.busy", soft=None, hard=0.5, destination=[W1],
                              reply=True, timeout=5) == [
        {W1: {"ok": "time limits set successfully"}}]
    # the new hard limit applies to the next task of that type
    result = ctl.busy.delay(5)
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=20)


def test_add_and_cancel_consumer(ctl: Any, spawn: WorkerFactory) -> None:
    spawn()
    control = ctl.app.control
    on_extra = ctl.add.apply_async((1, 2), queue="extra")
    time.sleep(0.5)
    assert on_extra.state == "PENDING"  # nobody consumes "extra" yet
    assert control.add_consumer("extra", destination=[W1], reply=True, timeout=5) == [
        {W1: {"ok": "add consumer extra"}}]
    assert on_extra.get(timeout=20) == 3
    assert [q["name"] for q in ask(ctl, "active_queues")] == ["celery", "extra"]
    assert control.cancel_consumer("extra", destination=[W1], reply=True, timeout=5) == [
        {W1: {"ok": "no longer consuming from extra"}}]
    later = ctl.add.apply_async((2, 2), queue="extra")
    time.sleep(0.5)
    assert later.state == "PENDING"
    (reply,) = control.cancel_consumer("celery", destination=[W1], reply=True, timeout=5)
    assert "only queue" in reply[W1]["error"]


def test_destination_reaches_only_the_named_worker(ctl: Any, spawn: WorkerFactory) -> None:
    spawn("w1@test")
    spawn("w2@test")
    everyone = ctl.app.control.inspect(timeout=1).ping()
    assert everyone == {"w1@test": {"ok": "pong"}, "w2@test": {"ok": "pong"}}
    assert ctl.app.control.ping(["w2@test"], timeout=5) == [{"w2@test": {"ok": "pong"}}]
    assert ctl.app.control.inspect(pattern=r"w1@.*", timeout=1).ping() == {
        "w1@test": {"ok": "pong"}}


def test_shutdown_stops_the_worker_warmly(ctl: Any, spawn: WorkerFactory,
                                          tmp_path: Path) -> None:
    proc = spawn()
    running = ctl.sleepy.delay(1, str(tmp_path))
    wait_until(lambda: (tmp_path / f"started-{running.id}").exists())
    assert ctl.app.control.shutdown(destination=[W1], reply=True, timeout=5) == [
        {W1: {"ok": "shutdown"}}]
    assert proc.wait(30) == 0
    assert running.get(timeout=5) == 1  # the running task finished first
