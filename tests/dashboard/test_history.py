"""The dashboard's task history, one contract over memory://, a real SQLite file and the real
Redis: merging events (any order, repeated, from two writers), hostile events, Flower's filters,
sort and search, children, charts' series, bounds, and a restart that loses nothing."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.dashboard.history import DEFAULT_URL, HistoryStore, default_history_url, open_history
from celeriac.dashboard.task_rows import MAX_TEXT_CHARS
from tests.redis.support import BACKEND_DB, drop_keys, redis_url

#: an hour ago (within the default age bound)
T0 = float(int(time.time()) - 3600)


def ev(type_: str, uuid: str, at: float, hostname: Any = "w1@host", **fields: Any
       ) -> dict[str, Any]:
    return {"type": f"task-{type_}", "uuid": uuid, "hostname": hostname, "timestamp": T0 + at,
            "clock": int(at * 10), "local_received": T0 + at + 0.01, **fields}


def lifecycle(uuid: str, at: float = 0.0, name: str = "proj.add", worker: str = "w1@host",
              **received: Any) -> list[dict[str, Any]]:
    return [
        ev("received", uuid, at, worker, name=name, args="(1, 2)", kwargs="{}", retries=0,
           **received),
        ev("started", uuid, at + 0.1, worker),
        ev("succeeded", uuid, at + 0.5, worker, result="3", runtime=0.4),
    ]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'history.db'}"
    else:
        found = redis_url(BACKEND_DB)
        yield found
        drop_keys(found)


@pytest.fixture
def store(url: str) -> Iterator[HistoryStore]:
    opened = open_history(url)
    yield opened
    opened.close()


def test_a_task_follows_its_events(store: HistoryStore) -> None:
    store.record(lifecycle("t1"))
    task = store.task("t1")
    assert task is not None
    assert task["state"] == "SUCCESS"
    assert task["name"] == "proj.add"
    assert (task["args"], task["kwargs"], task["result"]) == ("(1, 2)", "{}", "3")
    assert task["worker"] == "w1@host"
    assert task["received"] == T0 and task["started"] == T0 + 0.1
    assert task["succeeded"] == T0 + 0.5 and task["timestamp"] == T0 + 0.5
    assert task["runtime"] == 0.4 and task["retries"] == 0 and task["clock"] == 5
    assert task["children"] == []
    assert store.task("missing") is None


def test_any_order_and_repeats_give_the_same_task(url: str) -> None:
    expected: dict[str, Any] | None = None
    for i, order in enumerate(itertools.permutations(lifecycle("t"))):
        with open_history(url) as store:
            uuid = f"t{i}"
            events = [dict(e, uuid=uuid) for e in order]
            store.record(events)
            once = store.task(uuid)
            store.record(events)
            for event in events:
                store.record([event])
            assert store.task(uuid) == once
            assert once is not None
            got = dict(once, uuid="t")
            if expected is None:
                expected = got
            assert got == expected, order
            assert got["state"] == "SUCCESS"


def test_a_late_event_never_moves_the_state_back(store: HistoryStore) -> None:
    store.record([ev("succeeded", "a", 1.0, result="'ok'", runtime=0.2)])
    store.record([ev("started", "a", 0.5), ev("received", "a", 0.1, name="late.name",
                                               args="(9,)")])
    task = store.task("a")
    assert task is not None
    assert task["state"] == "SUCCESS" and task["timestamp"] == T0 + 1.0
    assert task["name"] == "late.name" and task["args"] == "(9,)"
    assert task["started"] == T0 + 0.5 and task["received"] == T0 + 0.1


def test_rejected_ends_an_unfinished_task_only(store: HistoryStore) -> None:
    store.record([ev("received", "r", 0), ev("started", "r", 0.1), ev("rejected", "r", 0.2)])
    store.record([*lifecycle("s"), ev("rejected", "s", 0.05)])
    assert store.task("r")["state"] == "REJECTED"  # type: ignore[index]
    assert store.task("s")["state"] == "SUCCESS"  # type: ignore[index]


def test_a_retried_task_and_a_replay_of_its_events(store: HistoryStore) -> None:
    events = [
        ev("received", "x", 0, name="proj.flaky"), ev("started", "x", 0.1),
        ev("retried", "x", 0.2, exception="Retry()", traceback="tb"),
        ev("received", "x", 1.0, name="proj.flaky", retries=1), ev("started", "x", 1.1),
        ev("succeeded", "x", 1.5, result="'second try'", runtime=0.3),
    ]
    for event in events:
        store.record([event])
    final = store.task("x")
    assert final is not None
    assert final["state"] == "SUCCESS" and final["retries"] == 1
    assert final["retried"] == T0 + 0.2 and final["received"] == T0 + 1.0
    # A second dashboard on the same store records every event again, in batches of its own.
    store.record(events[:3])
    assert store.task("x") == final
    store.record(events[3:])
    assert store.task("x") == final
    # Out of order for the first time: a retry older than the success is late, and so is a
    # start older than the retry.
    late = [dict(e, uuid="y") for e in events]
    store.record([late[0], *late[3:], late[2], late[1]])
    assert store.task("y") == dict(final, uuid="y")
    store.record([dict(e, uuid="z") for e in (events[0], events[2], events[1])])
    assert store.task("z")["state"] == "RETRY"  # type: ignore[index]


HOSTILE: list[Any] = [
    None, 42, "task-succeeded", [], {"type": None}, {"type": 7, "uuid": "h"},
    {"type": "task-succeeded", "uuid": 12, "timestamp": T0},
    {"type": "task-succeeded", "uuid": "u" * 10_000, "timestamp": T0},
    {"type": "task-succeeded", "uuid": "", "timestamp": T0},
    {"type": "task-succeeded", "uuid": "no-time", "timestamp": "soon"},
    {"type": "task-succeeded", "uuid": "nan-time", "timestamp": float("nan")},
    {"type": "task-" + "z" * 100, "uuid": "long-type", "timestamp": T0},
    {"type": "task-", "uuid": "empty-type", "timestamp": T0},
    {"type": "worker-heartbeat", "hostname": "w", "timestamp": T0},
]


def test_hostile_events_never_break_record(store: HistoryStore) -> None:
    store.record(HOSTILE)
    for event in HOSTILE:
        store.record([event])
    assert store.count() == 0
    odd = [
        # succeeded before received, with fields of the wrong types
        ev("succeeded", "odd", 1.0, result={"a": [1, 2]}, runtime="fast", hostname=None),
        ev("received", "odd", 0.0, name={"not": "a name"}, args=["a", "list"], retries=True,
           kwargs="k" * (MAX_TEXT_CHARS * 3), eta=float("inf")),
        ev("started", "odd", 0.5, clock="tick", terminated="yes"),
        ev("custom", "odd", 2.0, hostname="w" * 100_000),
    ]
    store.record(odd)
    store.record(odd)
    task = store.task("odd")
    assert task is not None
    assert task["state"] == "SUCCESS"  # a custom state ranks below SUCCESS, as in Celery
    assert task["result"] == '{"a":[1,2]}' and task["runtime"] is None
    assert task["args"] == '["a","list"]' and task["retries"] is None
    assert task["name"] == '{"not":"a name"}'
    assert len(task["kwargs"]) == MAX_TEXT_CHARS + 1 and task["kwargs"].endswith("…")
    assert task["terminated"] is None
    assert len(task["worker"]) < 1000
    assert store.count() == 1 and store.tasks(search="args:list")[0]["uuid"] == "odd"
    store.record([ev("received", "c", 0), ev("progress", "c", 1)])
    assert store.task("c")["state"] == "PROGRESS"  # type: ignore[index]


@pytest.fixture
def filled(store: HistoryStore) -> HistoryStore:
    store.record([
        *lifecycle("a1", 0, "proj.add", "w1@host"),
        *lifecycle("a2", 10, "proj.add", "w2@host"),
        ev("received", "m1", 20, "w1@host", name="proj.mul", args="('Needle',)", kwargs="{}"),
        ev("failed", "m1", 21, "w1@host", exception="ValueError('boom')", traceback="Trace"),
        ev("sent", "p1", 30, "client@host", name="proj.add", args="()", kwargs="{}"),
    ])
    return store


def ids(tasks: list[dict[str, Any]]) -> list[str]:
    return [t["uuid"] for t in tasks]


def test_filters_as_flower(filled: HistoryStore) -> None:
    assert ids(filled.tasks()) == ["p1", "m1", "a2", "a1"]  # newest event first
    assert ids(filled.tasks(workername="w1@host", sort_by="received")) == ["a1", "m1"]
    assert ids(filled.tasks(taskname="proj.add", sort_by="-received")) == ["a2", "a1", "p1"]
    assert ids(filled.tasks(state="FAILURE")) == ["m1"]
    assert ids(filled.tasks(state="PENDING")) == ["p1"]
    assert filled.task("p1")["client"] == "client@host"  # type: ignore[index]
    assert filled.task("p1")["worker"] is None  # type: ignore[index]
    assert ids(filled.tasks(received_start=T0 + 5, sort_by="received")) == ["a2", "m1"]
    assert ids(filled.tasks(received_end=T0 + 10, sort_by="received")) == ["a1", "a2"]
    assert ids(filled.tasks(received_start=T0 + 10, received_end=T0 + 10)) == ["a2"]
    assert ids(filled.tasks(state="SUCCESS", workername="w2@host")) == ["a2"]
    assert filled.count() == 4
    assert filled.count(taskname="proj.add") == 3
    assert filled.count(state="SUCCESS", received_start=T0 + 1) == 1
    assert filled.count(workername="nobody") == 0
    assert filled.task_types() == ["proj.add", "proj.mul"]


def test_search_as_flower(filled: HistoryStore) -> None:
    assert ids(filled.tasks(search="needle")) == ["m1"]
    assert ids(filled.tasks(search="args:needle")) == ["m1"]
    assert ids(filled.tasks(search="kwargs:needle")) == []
    assert ids(filled.tasks(search="boom")) == ["m1"]  # the exception
    assert ids(filled.tasks(search="state:success", sort_by="received")) == ["a1", "a2"]
    assert ids(filled.tasks(search="result:3 w2@")) == ["a2"]
    assert ids(filled.tasks(search="proj.add state:pending")) == ["p1"]
    assert ids(filled.tasks(search="%")) == [] and ids(filled.tasks(search="_")) == []
    assert filled.count(search="proj.") == 4 and filled.count(search="   ") == 4


def test_sort_and_pages(filled: HistoryStore) -> None:
    assert ids(filled.tasks(sort_by="received")) == ["p1", "a1", "a2", "m1"]  # None first
    assert ids(filled.tasks(sort_by="-received")) == ["m1", "a2", "a1", "p1"]  # None last
    assert ids(filled.tasks(sort_by="name"))[-1] == "m1"
    assert ids(filled.tasks(sort_by="-runtime"))[:2] in (["a1", "a2"], ["a2", "a1"])
    assert ids(filled.tasks(sort_by="-received", limit=2)) == ["m1", "a2"]
    assert ids(filled.tasks(sort_by="-received", limit=2, offset=2)) == ["a1", "p1"]
    assert ids(filled.tasks(sort_by="-received", offset=3)) == ["p1"]
    assert filled.tasks(limit=0) == []
    assert ids(filled.tasks(taskname="proj.add", sort_by="received", limit=1, offset=1)) == ["a1"]
    assert ids(filled.tasks(search="proj", sort_by="-received", limit=1, offset=1)) == ["a2"]
    for bad in ("nope", "-children", "data; DROP TABLE x"):
        with pytest.raises(ValueError, match="sort_by"):
            filled.tasks(sort_by=bad)
    with pytest.raises(ValueError, match="received_start"):
        filled.tasks(received_start="yesterday")
    with pytest.raises(ValueError, match="unknown task filter"):
        filled.count(colour="red")


def test_children_of_a_canvas(store: HistoryStore) -> None:
    # A child may be recorded before its parent.
    store.record(lifecycle("kid1", 1, parent_id="root", root_id="root"))
    store.record(lifecycle("root", 0))
    store.record(lifecycle("kid2", 2, parent_id="root", root_id="root"))
    assert sorted(store.task("root")["children"]) == ["kid1", "kid2"]  # type: ignore[index]
    assert store.task("kid1")["parent_id"] == "root"  # type: ignore[index]
    listed = {t["uuid"]: t["children"] for t in store.tasks()}
    assert sorted(listed["root"]) == ["kid1", "kid2"] and listed["kid1"] == []


def test_series_counts_per_bucket(store: HistoryStore) -> None:
    now = time.time()
    base = now - 25
    store.record([
        {**ev("received", "s1", 0), "timestamp": base},
        {**ev("succeeded", "s1", 0, runtime=1.0), "timestamp": base + 1},
        {**ev("received", "s2", 0), "timestamp": base + 2},
        {**ev("succeeded", "s2", 0, runtime=3.0), "timestamp": base + 3},
        {**ev("failed", "s3", 0), "timestamp": base + 12},
        {**ev("received", "old", 0), "timestamp": base - 3600},
    ])
    rows = store.series(base, 10)
    assert rows[0]["t"] <= base < rows[0]["t"] + 10
    assert [r["t"] - rows[0]["t"] for r in rows] == [i * 10 for i in range(len(rows))]
    assert rows[-1]["t"] <= now < rows[-1]["t"] + 10
    assert sum(r["received"] for r in rows) == 2  # "old" is before since_s
    assert sum(r["succeeded"] for r in rows) == 2 and sum(r["failed"] for r in rows) == 1
    first = next(r for r in rows if r["succeeded"])
    assert first["succeeded"] == 2 or first["runtime_avg_s"] in (1.0, 3.0)
    if first["succeeded"] == 2:
        assert first["runtime_avg_s"] == 2.0
    assert all(r["runtime_avg_s"] is None for r in rows if not r["succeeded"])
    with pytest.raises(ValueError):
        store.series(now - 100_000, 1)
    with pytest.raises(ValueError):
        store.series(now, 0)


def test_prune_applies_the_bounds(url: str) -> None:
    now = time.time()
    with open_history(url, max_tasks=3, max_age_s=3600) as store:
        store.record([{**e, "timestamp": now - 7200} for e in lifecycle("ancient")])
        for i in range(5):
            store.record([{**e, "timestamp": now - 100 + i} for e in lifecycle(f"n{i}")])
        assert store.prune() == 3
        assert sorted(ids(store.tasks())) == ["n2", "n3", "n4"]
        assert store.count(taskname="proj.add") == 3
        assert store.count(state="SUCCESS") == 3
        assert store.prune() == 0


def test_record_prunes_by_itself_after_many_new_tasks(url: str) -> None:
    with open_history(url, max_tasks=100) as store:
        for start in range(0, 300, 50):
            store.record([ev("received", f"b{i}", i, name="proj.add")
                          for i in range(start, start + 50)])
        assert 100 <= store.count() < 300


def test_a_restart_loses_nothing(url: str) -> None:
    if url.startswith("memory"):
        pytest.skip("memory:// lives as long as its process")
    with open_history(url) as store:
        store.record([*lifecycle("a"), *lifecycle("b", 5, parent_id="a")])
        before = store.tasks()
    with open_history(url) as store:
        assert store.tasks() == before
        assert store.task("a")["children"] == ["b"]  # type: ignore[index]
        store.record(lifecycle("a"))  # the same events again: nothing changes
        assert store.tasks() == before


def test_two_writers_on_one_store(url: str) -> None:
    """Two dashboards record every event each, at the same time, in batches of their own
    (memory://: two threads on one store)."""
    events = [e for i in range(60) for e in lifecycle(f"c{i}", i, worker=f"w{i % 3}")]
    with open_history(url) as single:
        single.record(events)
        expected = single.tasks(sort_by="uuid")
        single.prune()
    # An empty store of the same kind (a Redis key prefix under the fixture's, which drops it)
    other = url.replace("history.db", "two.db") if url.startswith("sqlite") else url + "two:"
    errors: list[BaseException] = []

    memory = open_history(other)

    def write(batch_size: int, order: list[dict[str, Any]]) -> None:
        try:
            store = memory if url.startswith("memory") else open_history(other)
            for start in range(0, len(order), batch_size):
                store.record(order[start:start + batch_size])
            if store is not memory:
                store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(7, events)),
               threading.Thread(target=write, args=(11, events[::-1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    with memory if url.startswith("memory") else open_history(other) as store:
        assert store.tasks(sort_by="uuid") == expected
    memory.close()


def test_open_history_urls(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    with open_history(str(path)) as store:
        store.record(lifecycle("p"))
    assert path.exists()
    with open_history(f"sqlite:///{path}") as store:
        assert store.task("p") is not None
    with pytest.raises(ValueError, match="history store"):
        open_history("mongodb://x")


def test_default_history_url(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'r.db'}"
    cases = {
        sqlite_url: sqlite_url,
        "redis://127.0.0.1:6379/11": "redis://127.0.0.1:6379/11",
        "memory://x": DEFAULT_URL,
    }
    for backend, expected in cases.items():
        app = Celery("h", broker="memory://h", backend=backend)
        assert default_history_url(app) == expected
    assert default_history_url(Celery("h", broker=sqlite_url)) == sqlite_url
