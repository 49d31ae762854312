"""Flower's HTTP API on the memory broker and result store, with a memory history fed Celery
events: paths, parameters, status codes and JSON shapes; hostile parameters and bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from celeriac import states
from celeriac.dashboard import api, openapi
from celeriac.dashboard.app import DashboardConfig
from tests.dashboard.api_support import StubCollector, client_for, make_app, task_events

Client = tuple[TestClient, StubCollector]


@pytest.fixture
def dash() -> Iterator[Client]:
    yield from client_for(make_app())


def test_tasks_lists_flower_shape_with_filters_sort_and_paging(dash: Client) -> None:
    client, collector = dash
    t0 = time.time() - 100
    for i in range(5):
        collector.feed(*task_events(at=t0 + i, task_id=f"ok-{i}"))
    collector.feed(*task_events(name="dash.other", worker="w2@host", state="FAILURE",
                                at=t0 + 10, task_id="bad-1"))
    everything = client.get("/api/tasks")
    assert everything.status_code == 200
    body = everything.json()
    assert set(body) == {f"ok-{i}" for i in range(5)} | {"bad-1"}
    assert everything.headers["X-Total-Count"] == "6"
    task = body["ok-3"]
    assert task["uuid"] == "ok-3" and task["name"] == "dash.add"
    assert task["state"] == "SUCCESS" and task["worker"] == "w1@host"
    assert task["args"] == "[1, 2]" and task["result"] == "3"
    assert task["received"] == pytest.approx(t0 + 3)

    newest = client.get("/api/tasks", params={"sort_by": "-received", "limit": 2}).json()
    assert list(newest) == ["bad-1", "ok-4"]
    page2 = client.get("/api/tasks", params={"sort_by": "received", "limit": 2, "offset": 2})
    assert list(page2.json()) == ["ok-2", "ok-3"] and page2.headers["X-Total-Count"] == "6"

    failed = client.get("/api/tasks", params={"state": "FAILURE"}).json()
    assert list(failed) == ["bad-1"] and failed["bad-1"]["exception"] == "ValueError('boom')"
    assert list(client.get("/api/tasks", params={"workername": "w2@host"}).json()) == ["bad-1"]
    assert len(client.get("/api/tasks", params={"taskname": "dash.add"}).json()) == 5
    assert len(client.get("/api/tasks", params={"taskname": "All", "state": "All"}).json()) == 6
    window = client.get("/api/tasks", params={"received_start": t0 + 0.5,
                                              "received_end": t0 + 2.5}).json()
    assert set(window) == {"ok-1", "ok-2"}
    assert client.get("/api/task/types").json() == {"task-types": ["dash.add", "dash.other"]}


@pytest.mark.parametrize("params", [
    {"limit": "ten"}, {"limit": "-1"}, {"offset": "x"}, {"received_start": "yesterday"},
    {"received_end": "nan"}, {"received_start": "inf"},
])
def test_tasks_bad_parameters_are_400(dash: Client, params: dict[str, str]) -> None:
    client, _ = dash
    response = client.get("/api/tasks", params=params)
    assert response.status_code == 400, params
    assert response.json()["error"]


def test_task_info_and_unknown_task(dash: Client) -> None:
    client, collector = dash
    collector.feed(*task_events(task_id="t-1", args="['<script>alert(1)</script>']"))
    info = client.get("/api/task/info/t-1")
    assert info.status_code == 200
    assert info.json()["task-id"] == "t-1" and info.json()["state"] == "SUCCESS"
    # task data goes out as JSON text, never interpreted
    assert info.json()["args"] == "['<script>alert(1)</script>']"
    assert info.headers["content-type"] == "application/json"
    missing = client.get("/api/task/info/nope")
    assert missing.status_code == 404 and missing.json() == {"error": "Unknown task 'nope'"}


def test_async_apply_publishes_a_registered_task(dash: Client) -> None:
    client, _ = dash
    app = client.app.state.dashboard.app  # type: ignore[attr-defined]
    response = client.post("/api/task/async-apply/dash.add", json={"args": [1, 2]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == states.PENDING and body["task-id"]
    assert app.broker.queue_size("celery") == 1
    queues = client.get("/api/queues/length").json()["active_queues"]
    assert queues[0]["name"] == "celery" and queues[0]["messages"] == 1
    assert queues[0]["oldest_age_s"] >= 0
    chosen = client.post("/api/task/async-apply/dash.add",
                         json={"args": [1], "kwargs": {"y": 2}, "task_id": "mine",
                               "countdown": 30, "queue": "other"})
    assert chosen.json()["task-id"] == "mine"
    assert app.broker.queue_size("other") == 1
    assert client.post("/api/task/async-apply/no.such.task", json={}).status_code == 404


@pytest.mark.parametrize("body, needle", [
    (b"[1, 2]", "JSON object"),
    (b"{not json", "invalid JSON"),
    (b'{"args": "1, 2"}', "args must be an array"),
    (b'{"kwargs": [1]}', "kwargs must be an object"),
    (b'{"serializer": "pickle"}', "unknown option"),
    (b'{"countdown": "soon"}', "Invalid option"),
    (b'{"eta": "tomorrow"}', "Invalid option"),
    (b'{"args": [1, 2, 3]}', "TypeError"),  # the task takes two arguments
])
def test_task_call_hostile_bodies_are_400(dash: Client, body: bytes, needle: str) -> None:
    client, _ = dash
    app = client.app.state.dashboard.app  # type: ignore[attr-defined]
    response = client.post("/api/task/async-apply/dash.add", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]
    assert app.broker.queue_size("celery") == 0


def test_oversized_body_is_413(dash: Client) -> None:
    client, _ = dash
    response = client.post("/api/task/send-task/x", content=b"{" + b" " * (2 << 20) + b"}",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_send_task_needs_no_registration_and_apply_waits_for_the_result(dash: Client) -> None:
    client, _ = dash
    app = client.app.state.dashboard.app  # type: ignore[attr-defined]
    sent = client.post("/api/task/send-task/elsewhere.task", json={"args": [1]})
    assert sent.status_code == 200 and app.broker.queue_size("celery") == 1
    # no worker: apply gives up after ?timeout= and says PENDING
    waited = client.post("/api/task/apply/dash.add?timeout=0.2", json={"args": [1, 2]})
    assert waited.status_code == 200
    assert waited.json()["state"] == states.PENDING and "result" not in waited.json()


def test_task_result_reads_the_result_store(dash: Client) -> None:
    client, _ = dash
    app = client.app.state.dashboard.app  # type: ignore[attr-defined]
    app.store_result("r-ok", {"sum": 3}, states.SUCCESS)
    assert client.get("/api/task/result/r-ok").json() == {
        "task-id": "r-ok", "state": "SUCCESS", "result": {"sum": 3}}
    app.store_result("r-bad", ValueError("boom"), states.FAILURE, traceback="Traceback: boom")
    failed = client.get("/api/task/result/r-bad").json()
    assert failed["state"] == "FAILURE" and failed["traceback"] == "Traceback: boom"
    pending = client.get("/api/task/result/r-none", params={"timeout": "0.1"}).json()
    assert pending == {"task-id": "r-none", "state": "PENDING"}
    assert client.get("/api/task/result/r-ok", params={"timeout": "x"}).status_code == 400


def test_revoke_and_abort(dash: Client) -> None:
    client, _ = dash
    app = client.app.state.dashboard.app  # type: ignore[attr-defined]
    assert client.post("/api/task/revoke/rv-1").json() == {"message": "Revoked 'rv-1'"}
    assert app.control.is_revoked("rv-1")
    terminated = client.post("/api/task/revoke/rv-2", data={"terminate": "true",
                                                              "signal": "SIGKILL"})
    assert terminated.status_code == 200
    assert app.coordination.revoked(["rv-2/terminate/SIGKILL"])
    bad = client.post("/api/task/revoke/rv-3", params={"terminate": "1", "signal": "SIGSTOP"})
    assert bad.status_code == 400 and not app.control.is_revoked("rv-3")
    # terminate=false means false (Flower took any value as true)
    client.post("/api/task/revoke/rv-4", params={"terminate": "false", "signal": "SIGKILL"})
    assert not app.coordination.revoked(["rv-4/terminate/SIGKILL"])

    assert client.post("/api/task/abort/ab-1").json() == {"message": "Aborted 'ab-1'"}
    assert app.AsyncResult("ab-1").state == "ABORTED"
    app.store_result("ab-2", 5, states.SUCCESS)
    client.post("/api/task/abort/ab-2")
    assert app.AsyncResult("ab-2").state == states.SUCCESS  # a stored outcome stays


def test_workers_status_and_unknown_workers(dash: Client) -> None:
    client, collector = dash
    collector.live = {"w1@host": {"hostname": "w1@host", "status": True, "active": 2},
                      "w2@host": {"hostname": "w2@host", "status": False, "active": 0}}
    assert client.get("/api/workers", params={"status": "1"}).json() == {
        "w1@host": True, "w2@host": False}
    assert client.get("/api/dashboard/workers").json()["w1@host"]["active"] == 2
    assert client.get("/api/workers", params={"workername": "ghost@x"}).status_code == 404
    for path in ("/api/worker/shutdown/ghost@x", "/api/worker/pool/grow/ghost@x",
                 "/api/worker/pool/restart/ghost@x",
                 "/api/worker/queue/add-consumer/ghost@x?queue=q"):
        assert client.post(path).status_code == 404, path
    # a known worker that does not answer in time: 403 with the reason (Flower's code)
    client.app.state.dashboard.config.inspect_timeout_s = 0.1  # type: ignore[attr-defined]
    silent = client.post("/api/worker/pool/grow/w2@host", params={"n": 2})
    assert silent.status_code == 403 and "no reply" in silent.json()["error"]
    assert client.post("/api/worker/pool/grow/w2@host", params={"n": 0}).status_code == 400
    # JSON's Infinity is a float that int() cannot hold: a 400 as any other bad number
    for body in (b'{"n": Infinity}', b'{"n": -Infinity}', b'{"n": NaN}', b'{"n": 1e400}'):
        bad = client.post("/api/worker/pool/grow/w2@host", content=body,
                          headers={"content-type": "application/json"})
        assert bad.status_code == 400, body
    assert client.post("/api/worker/queue/add-consumer/w2@host").status_code == 400
    assert client.post("/api/worker/pool/autoscale/w2@host?min=1").status_code == 400


def test_rate_limit_and_timeout_parameters(dash: Client) -> None:
    client, _ = dash
    assert client.post("/api/task/rate-limit/no.such",
                       data={"ratelimit": "1/s"}).status_code == 404
    assert client.post("/api/task/rate-limit/dash.add").status_code == 400
    assert client.post("/api/task/rate-limit/dash.add",
                       data={"ratelimit": "1/s", "workername": "ghost@x"}).status_code == 404
    assert client.post("/api/task/timeout/dash.add", data={"soft": "abc"}).status_code == 400
    assert client.post("/api/task/timeout/no.such", data={"soft": "1"}).status_code == 404
    # no worker answers: 403 with the reason, as Flower
    client.app.state.dashboard.config.inspect_timeout_s = 0.1  # type: ignore[attr-defined]
    silent = client.post("/api/task/timeout/dash.add", data={"soft": "1", "hard": "2"})
    assert silent.status_code == 403 and "no worker replied" in silent.json()["error"]


def test_series_for_charts(dash: Client) -> None:
    client, collector = dash
    collector.feed(*task_events(at=time.time() - 30))
    body = client.get("/api/dashboard/series", params={"bucket_s": 60, "window_s": 600}).json()
    assert body["bucket_s"] == 60
    assert sum(row["succeeded"] for row in body["series"]) == 1
    assert client.get("/api/dashboard/series", params={"bucket_s": 0}).status_code == 400
    assert client.get("/api/dashboard/series",
                      params={"bucket_s": 0.001, "window_s": 1e9}).status_code == 400


def test_url_prefix_serves_everything_under_it() -> None:
    for client, collector in client_for(make_app(), DashboardConfig(
            url_prefix="/flower/", unauthenticated_api=True)):
        collector.feed(*task_events(task_id="p-1"))
        assert "p-1" in client.get("/flower/api/tasks").json()
        assert client.get("/flower/healthcheck").text == "OK"
        assert client.get("/api/tasks").status_code == 404
        doc = client.get("/flower/api/openapi.json").json()
        assert doc["servers"] == [{"url": "/flower"}]


def test_openapi_describes_exactly_the_routes(dash: Client) -> None:
    client, _ = dash
    doc = client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    served = {(path, method.lower()) for path, _, methods in api.ENDPOINTS for method in methods}
    served.add(("/api/openapi.json", "get"))
    described = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert described == served
    assert openapi.document()["paths"].keys() == doc["paths"].keys()
