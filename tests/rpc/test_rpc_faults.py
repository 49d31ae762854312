"""rpc:// under a fault: RabbitMQ closes the worker's reply connection (rabbitmqctl
close_connection, twice) while it works through a burst. With ``result_persistent`` the worker
waits for confirms, publishes an unconfirmed batch again on a new connection, and the caller
gets every result. Tasks travel on Redis, so the only connection of the worker to RabbitMQ is
the one results go over, and only that one is closed (other test runs share the server)."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from celeriac import Celery
from tests.rpc.support import amqp_url
from tests.support.services import broker_url
from tests.support.workers import WorkerProcess, wait_until

TASKS = '''
import os, time
from celeriac import Celery

app = Celery("faulttasks", broker=os.environ["FAULT_BROKER"], backend="rpc://")
app.conf.result_backend_transport_options = {"broker_url": os.environ["FAULT_AMQP"]}
app.conf.result_persistent = True


@app.task
def slow_echo(n):
    time.sleep(0.02)
    return n
'''


def _worker_connections(pid: int) -> list[str]:
    """RabbitMQ's ids of the connections process ``pid`` holds to port 5672 (matched by the
    local port ``ss`` lists for ``pid``)."""
    listing = subprocess.run(["ss", "-tnpH", "state", "established", "( dport = :5672 )"],
                             capture_output=True, text=True, check=False).stdout
    ports = {m.group(1) for line in listing.splitlines() if f"pid={pid}," in line
             for m in [re.search(r"127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:5672", line)] if m}
    if not ports:
        return []
    rows = subprocess.run(["rabbitmqctl", "list_connections", "-q", "pid", "peer_port"],
                          capture_output=True, text=True, check=False, timeout=30).stdout
    return [row.split("\t")[0] for row in rows.splitlines()
            if row.count("\t") == 1 and row.split("\t")[1].strip() in ports]


def _close(connection_pid: str) -> None:
    done = subprocess.run(["rabbitmqctl", "close_connection", connection_pid,
                           "test: fault injection"], capture_output=True, text=True,
                          check=False, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None or shutil.which("ss") is None,
                    reason="needs rabbitmqctl and ss on this machine")
def test_results_survive_the_worker_losing_its_reply_connection(tmp_path: Path) -> None:
    (tmp_path / "faulttasks.py").write_text(TASKS)
    with broker_url("redis", tmp_path) as url:
        env = {"FAULT_BROKER": url, "FAULT_AMQP": amqp_url()}
        with WorkerProcess(tmp_path, "faulttasks", env=env, pool="solo") as worker:
            worker.ready()
            client = Celery("fault-caller", broker=url, backend="rpc://")
            client.conf.result_backend_transport_options = {"broker_url": amqp_url()}
            try:
                results = [client.send_task("faulttasks.slow_echo", (n,)) for n in range(300)]
                closed: list[str] = []

                def inject() -> None:
                    for _ in range(2):
                        wait_until(lambda: bool(_worker_connections(worker.pid)), 30,
                                   "worker's reply connection")
                        names = _worker_connections(worker.pid)
                        for name in names:
                            _close(name)
                        closed.extend(names)
                        time.sleep(0.5)

                injector = threading.Thread(target=inject)
                injector.start()
                got = [r.get(timeout=60) for r in results]
                injector.join(60)
                assert got == list(range(300))
                assert len(closed) >= 2, "the fault was never injected"
                # The worker noticed mid-burst and published its batch again.
                assert "rpc:// lost its connection" in worker.output()
            finally:
                client.close()
            worker.stop()
