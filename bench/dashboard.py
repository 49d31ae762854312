"""Dashboard history at scale: fill a store with N tasks (three events each, as a worker sends
them), then time the queries the dashboard's pages and API make. Prints milliseconds per query
(median of several runs) for each store."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celeriac.dashboard.history import HistoryStore, open_history

STATES = ("succeeded", "succeeded", "succeeded", "failed")
BATCH = 3000


def _events(n: int, now: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        at = now - n * 0.01 + i * 0.01
        common = {"uuid": f"task-{i:07d}", "hostname": f"worker{i % 8}@bench"}
        out.append({"type": "task-received", "timestamp": at, "name": f"proj.task{i % 20}",
                    "args": f"({i}, {i * 2})", "kwargs": "{}", "retries": 0, **common})
        out.append({"type": "task-started", "timestamp": at + 0.001, **common})
        end = STATES[i % len(STATES)]
        out.append({"type": f"task-{end}", "timestamp": at + 0.005, "runtime": 0.004,
                    "result": str(i * 3) if end == "succeeded" else None,
                    "exception": "ValueError('boom')" if end == "failed" else None, **common})
    return out


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _queries(store: HistoryStore, n: int, now: float) -> list[tuple[str, Callable[[], object]]]:
    middle = f"task-{n // 2:07d}"
    return [
        ("tasks(limit=20, sort_by='-received', state='FAILURE')",
         lambda: store.tasks(limit=20, sort_by="-received", state="FAILURE")),
        ("tasks(limit=20, sort_by='-received', state='SUCCESS', offset=5000)",
         lambda: store.tasks(limit=20, offset=5000, sort_by="-received", state="SUCCESS")),
        ("tasks(limit=20) (newest first)", lambda: store.tasks(limit=20)),
        ("tasks(limit=20, taskname=..., workername=...)",
         lambda: store.tasks(limit=20, sort_by="-received", taskname="proj.task3",
                             workername="worker3@bench")),
        ("tasks(limit=20, received in the last 10 s)",
         lambda: store.tasks(limit=20, sort_by="-received", received_start=now - 10)),
        ("count(state='SUCCESS')", lambda: store.count(state="SUCCESS")),
        ("count()", lambda: store.count()),
        ("task(id)", lambda: store.task(middle)),
        ("task_types()", store.task_types),
        ("series(last hour, 60 s buckets)", lambda: store.series(now - 3600, 60)),
        ("tasks(limit=20, search='args:(4242,')",
         lambda: store.tasks(limit=20, search="args:(4242,")),
    ]


def _bench_store(label: str, store: HistoryStore, n: int, rounds: int) -> None:
    now = time.time()
    events = _events(n, now)
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        store.record(events[start:start + BATCH])
    fill_s = time.perf_counter() - started
    print(f"\n{label}: {store.count()} tasks recorded in {fill_s:.1f} s "
          f"({len(events) / fill_s:,.0f} events/s)")
    print(f"{'query':<68} {'ms':>9}")
    for name, fn in _queries(store, n, now):
        few = max(1, rounds // 5) if "search" in name or name.startswith("count()") else rounds
        print(f"{name:<68} {_median_ms(fn, few):>9.2f}")


def run(n: int, rounds: int, redis_url: str, memory: bool) -> int:
    bounds = {"max_tasks": n + 1, "max_age_s": 86400.0}
    with tempfile.TemporaryDirectory() as tmp, \
            open_history(f"sqlite:///{Path(tmp) / 'history.db'}", **bounds) as store:
        _bench_store("SQLite", store, n, rounds)
    if redis_url:
        prefix = f"bench-dashboard-{int(time.time())}:"
        url = f"{redis_url}{'&' if '?' in redis_url else '?'}global_keyprefix={prefix}"
        with open_history(url, **bounds) as store:
            try:
                _bench_store("Redis", store, n, rounds)
            finally:
                _drop(redis_url, prefix)
    if memory:
        with open_history("memory://", **bounds) as store:
            _bench_store("memory://", store, n, rounds)
    return 0


def _drop(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])
    finally:
        client.close()
