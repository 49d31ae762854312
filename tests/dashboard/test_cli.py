"""``celeriac dashboard`` / ``flower``: option checks (exit 2 with one line), and the real thing:
a dashboard process (uvicorn, the real Collector and a SQLite history) watching a real worker
process on a SQLite broker through Flower's API, the event stream and /metrics."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from celeriac.cli.dashboard import history_url_of, is_loopback
from celeriac.cli.main import main
from tests.worker.support import REPO_ROOT, start_worker, wait_until, worker_code

TASKS = textwrap.dedent(
    """
    import os
    from celeriac import Celery

    app = Celery("dashproj", broker=os.environ["DASHPROJ_URL"], backend=os.environ["DASHPROJ_URL"])

    @app.task
    def add(x, y):
        return x + y
    """
)
AUTH = ("admin", "pw:with:colons")


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.0.0.9", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.1.2.3", False),
    ("example.com", False),
])
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_history_url_of_db_option() -> None:
    assert history_url_of(None) is None
    assert history_url_of("redis://h:6379/3") == "redis://h:6379/3"
    assert history_url_of("flower.db") == "sqlite:///flower.db"
    assert history_url_of("/var/lib/x.db") == "sqlite:////var/lib/x.db"


@pytest.mark.parametrize("command", ["dashboard", "flower"])
@pytest.mark.parametrize("args, needle", [
    (["--address", "0.0.0.0"], "refusing to listen on 0.0.0.0 without --basic-auth"),
    (["--address=10.0.0.1", "--read-only"], "refusing to listen on 10.0.0.1"),
    (["--basic-auth", "nocolon"], "--basic-auth wants user:password"),
    (["--basic-auth", ":pw"], "--basic-auth wants user:password"),
])
def test_refused_configurations_exit_2_with_one_line(command: str, args: list[str],
                                                     needle: str) -> None:
    result = CliRunner().invoke(main, ["-b", "memory://", command, *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def stop(proc: subprocess.Popen[bytes], signum: int) -> None:
    if proc.poll() is None:
        proc.send_signal(signum)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "dashproj.py").write_text(TASKS)
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    return {"root": tmp_path, "env": {"DASHPROJ_URL": url}}


@pytest.fixture
def worker(project: dict[str, Any]) -> Iterator[subprocess.Popen[bytes]]:
    code = worker_code("dashproj", pool="threads", concurrency=2, send_events=True,
                       hostname="dash1@testhost")
    proc = start_worker(project["root"], code, project["env"])
    yield proc
    stop(proc, signal.SIGTERM)


@pytest.fixture
def dashboard(project: dict[str, Any]) -> Iterator[httpx.Client]:
    port = free_port()
    root: Path = project["root"]
    env = dict(os.environ, **project["env"])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), str(REPO_ROOT),
                                                    env.get("PYTHONPATH", "")) if p)
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    log = open(root / "dashboard.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "dashproj", "flower", f"--port={port}",
         f"--basic-auth={AUTH[0]}:{AUTH[1]}", f"--db={root / 'history.db'}",
         "--broker-api=http://guest:guest@localhost:15672/api/", "--persistent=True"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=AUTH, timeout=30)

    def healthy() -> bool:
        assert proc.poll() is None, (root / "dashboard.log").read_text()
        try:
            return client.get("/healthcheck").text == "OK"
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, timeout_s=30)
        yield client
    finally:
        client.close()
        stop(proc, signal.SIGINT)
        log.close()
    output = (root / "dashboard.log").read_text()
    assert "queue lengths are read through the broker" in output
    assert "Traceback" not in output, output


@pytest.mark.slow
def test_dashboard_process_watches_a_real_worker(dashboard: httpx.Client,
                                                 worker: subprocess.Popen[bytes]) -> None:
    name = "dash1@testhost"
    token = base64.b64encode(f"{AUTH[0]}:wrong".encode()).decode()
    assert dashboard.get("/api/workers", auth=None,
                         headers={"Authorization": f"Basic {token}"}).status_code == 401

    wait_until(lambda: dashboard.get("/api/workers", params={"status": 1}).json().get(name),
               timeout_s=30)
    workers = dashboard.get("/api/workers", params={"refresh": 1}).json()
    assert "dashproj.add" in workers[name]["registered"]
    assert workers[name]["stats"]["pool"]["max-concurrency"] == 2
    assert workers[name]["active_queues"][0]["name"] == "celery"

    with dashboard.stream("GET", "/api/events/stream",
                          params={"types": "task-*"}, timeout=30) as stream:
        sent = dashboard.post("/api/task/async-apply/dashproj.add", json={"args": [2, 3]})
        assert sent.status_code == 200, sent.text
        task_id = sent.json()["task-id"]
        seen: list[str] = []
        deadline = time.monotonic() + 30
        for line in stream.iter_lines():
            assert time.monotonic() < deadline, seen
            if line.startswith("data: "):
                event = json.loads(line[len("data: "):])
                assert event["type"].startswith("task-")
                if event.get("uuid") == task_id:
                    seen.append(event["type"])
                    if event["type"] == "task-succeeded":
                        break
    assert seen[-1] == "task-succeeded" and "task-received" in seen

    result = dashboard.get(f"/api/task/result/{task_id}", params={"timeout": 10}).json()
    assert result == {"task-id": task_id, "state": "SUCCESS", "result": 5}
    wait_until(lambda: dashboard.get(f"/api/task/info/{task_id}").status_code == 200
               and dashboard.get(f"/api/task/info/{task_id}").json()["state"] == "SUCCESS")
    listed = dashboard.get("/api/tasks", params={"state": "SUCCESS", "workername": name})
    assert task_id in listed.json() and listed.json()[task_id]["result"] == "5"
    assert "dashproj.add" in dashboard.get("/api/task/types").json()["task-types"]

    grown = dashboard.post(f"/api/worker/pool/grow/{name}", params={"n": 1})
    assert grown.json() == {"message": f"Growing '{name}' worker's pool by 1"}
    limited = dashboard.post("/api/task/rate-limit/dashproj.add",
                             data={"ratelimit": "100/s", "workername": name})
    assert limited.status_code == 200 and "rate limit" in limited.json()["message"]
    consumer = dashboard.post(f"/api/worker/queue/add-consumer/{name}", params={"queue": "more"})
    assert consumer.json() == {"message": "add consumer more"}

    metrics = dashboard.get("/metrics").text
    assert (f'flower_events_total{{task="dashproj.add",type="task-succeeded",worker="{name}"}}'
            in metrics)
    assert f'flower_worker_online{{worker="{name}"}} 1' in metrics
    assert 'celeriac_queue_length{queue="celery"} 0' in metrics

    assert dashboard.post(f"/api/worker/shutdown/{name}").json() == {
        "message": "Shutting down!"}
    assert worker.wait(timeout=30) == 0
