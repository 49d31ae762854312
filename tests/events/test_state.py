"""``State``: tasks and workers as their events describe them, events in any order, bounded."""

from __future__ import annotations

import time
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.events import State


def task_event(type_: str, uuid: str, ts: float, **fields: Any) -> dict[str, Any]:
    return {"type": f"task-{type_}", "uuid": uuid, "hostname": "w1@h", "timestamp": ts,
            "local_received": time.time(), "clock": 1, **fields}


def worker_event(type_: str, hostname: str = "w1@h", **fields: Any) -> dict[str, Any]:
    now = time.time()
    return {"type": f"worker-{type_}", "hostname": hostname, "timestamp": now,
            "local_received": now, "freq": 2.0, **fields}


def test_app_events_state_is_a_state(app: Celery) -> None:
    assert isinstance(app.events.State(max_tasks_in_memory=5), State)


def test_a_task_goes_received_started_succeeded() -> None:
    state = State()
    state.event(task_event("received", "t1", 1.0, name="proj.add", args="[1, 2]",
                           kwargs="{}", retries=0, root_id="t1", parent_id=None))
    assert state.tasks["t1"].state == states.RECEIVED
    state.event(task_event("started", "t1", 2.0))
    assert state.tasks["t1"].state == states.STARTED
    state.event(task_event("succeeded", "t1", 3.0, result="3", runtime=0.5))
    task = state.tasks["t1"]
    assert (task.state, task.name, task.args, task.result, task.runtime) == (
        states.SUCCESS, "proj.add", "[1, 2]", "3", 0.5)
    assert (task.received, task.started, task.succeeded, task.timestamp) == (1.0, 2.0, 3.0, 3.0)
    assert task.worker is not None and task.worker.hostname == "w1@h"
    assert task.ready
    assert task.info()["result"] == "3"
    assert task.as_dict()["worker"] == "w1@h"


def test_late_events_never_move_a_task_back() -> None:
    state = State()
    state.event(task_event("succeeded", "t1", 3.0, result="3"))
    state.event(task_event("started", "t1", 2.0))
    state.event(task_event("received", "t1", 1.0, name="proj.add", args="[1, 2]"))
    task = state.tasks["t1"]
    assert task.state == states.SUCCESS
    assert (task.name, task.args, task.timestamp) == ("proj.add", "[1, 2]", 3.0)
    assert (task.received, task.started) == (1.0, 2.0)


def test_a_retried_task_runs_again_and_a_rejected_one_ends() -> None:
    state = State()
    state.event(task_event("started", "t1", 1.0))
    state.event(task_event("retried", "t1", 2.0, exception="Retry in 1s"))
    assert state.tasks["t1"].state == states.RETRY
    state.event(task_event("started", "t1", 3.0))
    assert state.tasks["t1"].state == states.STARTED
    state.event(task_event("rejected", "t1", 4.0, requeue=False))
    assert state.tasks["t1"].state == states.REJECTED
    assert state.tasks["t1"].requeue is False


def test_task_sent_names_the_client() -> None:
    state = State()
    state.event(task_event("sent", "t1", 1.0, name="proj.add", hostname="gen1@client",
                           queue="celery"))
    task = state.tasks["t1"]
    assert (task.state, task.client, task.queue, task.worker) == (
        states.PENDING, "gen1@client", "celery", None)


def test_at_most_max_tasks_are_kept_least_recently_updated_first() -> None:
    state = State(max_tasks_in_memory=3)
    for n in range(5):
        state.event(task_event("received", f"t{n}", float(n), name="a" if n % 2 else "b"))
    state.event(task_event("started", "t2", 9.0))
    state.event(task_event("received", "t5", 10.0, name="a"))
    assert list(state.tasks) == ["t4", "t2", "t5"]
    assert [uuid for uuid, _ in state.tasks_by_time()] == ["t5", "t2", "t4"]
    assert [uuid for uuid, _ in state.tasks_by_time(limit=1, reverse=False)] == ["t4"]
    assert [uuid for uuid, _ in state.itertasks(limit=2)] == ["t4", "t2"]
    assert state.task_types() == ["a", "b"]
    assert [uuid for uuid, _ in state.tasks_by_type("a")] == ["t5"]  # forgotten ones too
    assert state.task_count == 6


def test_tasks_by_type_and_by_worker() -> None:
    state = State()
    state.event(task_event("received", "t1", 1.0, name="proj.add"))
    state.event(task_event("received", "t2", 2.0, name="proj.mul"))
    state.event(task_event("received", "t3", 3.0, name="proj.add"))
    assert [u for u, _ in state.tasks_by_type("proj.add")] == ["t3", "t1"]
    assert {t.uuid for t in state.tasks_by_type["proj.add"]} == {"t1", "t3"}
    assert [u for u, _ in state.tasks_by_worker("w1@h", limit=1)] == ["t3"]


def test_a_worker_is_alive_between_online_and_offline() -> None:
    joined: list[str] = []
    left: list[str] = []
    state = State(on_node_join=lambda w: joined.append(w.hostname),
                  on_node_leave=lambda w: left.append(w.hostname))
    state.event(worker_event("online", sw_ident="celeriac", processed=0, active=0))
    worker = state.workers["w1@h"]
    assert worker.alive and worker.status_string == "ONLINE"
    state.event(worker_event("heartbeat", processed=7, active=2, loadavg=[0.1, 0.2, 0.3]))
    assert (worker.processed, worker.active, worker.loadavg, worker.sw_ident) == (
        7, 2, [0.1, 0.2, 0.3], "celeriac")
    assert state.alive_workers() == [worker]
    state.event(worker_event("offline"))
    assert not worker.alive
    assert state.alive_workers() == []
    assert (joined, left) == (["w1@h"], ["w1@h"])


def test_a_worker_without_heartbeats_for_two_periods_is_gone() -> None:
    state = State()
    old = time.time() - 10
    state.event({"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": old,
                 "local_received": old, "freq": 2.0})
    assert not state.workers["w1@h"].alive
    assert state.workers["w1@h"].heartbeat_expires == pytest.approx(old + 4.0)


def test_at_most_max_workers_are_kept() -> None:
    state = State(max_workers_in_memory=2)
    for name in ("a@h", "b@h", "c@h"):
        state.event(worker_event("online", hostname=name))
    assert list(state.workers) == ["b@h", "c@h"]


@pytest.mark.parametrize("event", [
    {},
    {"type": 5},
    {"type": "task-started"},
    {"type": "task-started", "uuid": 7, "hostname": "w"},
    {"type": "worker-online", "hostname": None},
    {"type": "something-else", "hostname": "w", "uuid": "x"},
])
def test_an_event_it_cannot_use_changes_nothing(event: dict[str, Any]) -> None:
    state = State()
    assert state.event(event) == ((None, False), None)
    assert (dict(state.tasks), dict(state.workers)) == ({}, {})


def test_odd_timestamps_fall_back_to_now() -> None:
    state = State()
    (task, created), group = state.event(
        {"type": "task-started", "uuid": "t1", "hostname": "w", "timestamp": "noon"})
    assert (created, group) == (True, "task")
    assert abs(task.timestamp - time.time()) < 60


def test_the_callback_sees_every_event() -> None:
    seen: list[str] = []
    state = State(callback=lambda st, ev: seen.append(ev["type"]))
    state.event(task_event("received", "t1", 1.0))
    state.event(worker_event("online"))
    assert seen == ["task-received", "worker-online"]
    assert state.event_count == 2
