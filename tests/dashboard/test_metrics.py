"""GET /metrics: Prometheus text with Flower's metric names and labels, counted from the events
the collector hands out, plus queue length and oldest-message age per queue."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from celeriac.dashboard.metrics import Metrics, format_labels
from tests.dashboard.api_support import StubCollector, client_for, make_app, task_events
from tests.worker.support import wait_until

Client = tuple[TestClient, StubCollector]
#: a sample line: name, labels (values quoted, with \\, \" and \n escapes), value
SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')


@pytest.fixture
def dash() -> Iterator[Client]:
    yield from client_for(make_app())


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value; fails on any line that is neither a sample nor a comment."""
    found = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE ") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not exposition format: {line!r}"
        found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return found


def test_flower_metrics_from_events_and_queue_depth(dash: Client) -> None:
    client, collector = dash
    app = client.app.state.dashboard.app  # type: ignore[attr-defined]
    collector.live = {"w1@host": {"status": True, "active": 3},
                      "w2@host": {"status": False, "active": 0}}
    collector.feed(*task_events(task_id="a", runtime_s=0.02))
    collector.feed(*task_events(task_id="b", runtime_s=3.0))
    collector.feed(*task_events(task_id="c", state="FAILURE"))
    app.send_task("dash.add", args=[1, 2])
    app.send_task("dash.add", args=[1, 2], queue="slow")

    def scrape() -> dict[str, float]:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return samples(response.text)

    wait_until(lambda: scrape().get(
        'flower_events_total{task="dash.add",type="task-started",worker="w1@host"}') == 3)
    got = scrape()
    assert got['flower_events_total{task="dash.add",type="task-succeeded",worker="w1@host"}'] == 2
    assert got['flower_events_total{task="dash.add",type="task-failed",worker="w1@host"}'] == 1
    runtime = 'flower_task_runtime_seconds_{}{{task="dash.add",worker="w1@host"{}}}'
    assert got[runtime.format("count", "")] == 2
    assert got[runtime.format("sum", "")] == pytest.approx(3.02)
    assert got[runtime.format("bucket", ',le="0.025"')] == 1
    assert got[runtime.format("bucket", ',le="2.5"')] == 1
    assert got[runtime.format("bucket", ',le="+Inf"')] == 2
    assert got['flower_task_prefetch_time_seconds{task="dash.add",worker="w1@host"}'] == (
        pytest.approx(0.5))
    assert got['flower_worker_prefetched_tasks{task="dash.add",worker="w1@host"}'] == 0
    assert got['flower_worker_online{worker="w1@host"}'] == 1
    assert got['flower_worker_online{worker="w2@host"}'] == 0
    assert got['flower_worker_number_of_currently_executing_tasks{worker="w1@host"}'] == 3
    assert got['celeriac_queue_length{queue="celery"}'] == 1
    assert got['celeriac_queue_oldest_age_seconds{queue="celery"}'] >= 0


def test_metrics_ignore_hostile_events_and_escape_labels() -> None:
    metrics = Metrics()
    hostile: list[Any] = [
        None, 42, "text", [], {}, {"type": 5, "hostname": "w"}, {"type": "task-x"},
        {"type": "task-succeeded", "hostname": "w", "uuid": 7, "runtime": "fast"},
        {"type": "task-succeeded", "hostname": "w", "uuid": "u", "runtime": float("nan")},
        {"type": "task-succeeded", "hostname": "w", "uuid": "u", "runtime": -1},
        {"type": "task-started", "hostname": "w", "uuid": "never-received", "timestamp": "x"},
        {"type": "task-received", "hostname": 'evil"\n}', "uuid": "q", "name": 'a"b\\c\nd',
         "timestamp": time.time()},
    ]
    for event in hostile:
        metrics.record(event)
    text = metrics.render({"w\"x": {"status": True, "active": "many"}}, [])
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    for line in lines:
        assert SAMPLE.match(line), line
    assert 'task="a\\"b\\\\c\\nd"' in text and 'worker="evil\\"\\n}"' in text
    assert "flower_task_runtime_seconds_count" not in text  # no valid runtime was seen
    assert format_labels([]) == ""


def test_metric_series_are_bounded() -> None:
    metrics = Metrics()
    for i in range(12_000):
        metrics.record({"type": "task-received", "hostname": "w", "uuid": str(i),
                        "name": f"flood.{i}", "timestamp": 1.0})
    assert len(metrics.events) == 10_000
